import AxeBuilder from '@axe-core/playwright'
import { expect, test, type Page } from '@playwright/test'

import { createRoom, messageList, openRoom, send, signUp, unique, type Person } from './helpers'

// Issue 12 in the browser: edit, delete (own, and as the room's owner), react and reply in two
// browser contexts, then both reload and see the same state from the server. Markdown shows as
// elements, and a hostile link stays text.
test.describe.configure({ mode: 'serial' })

let alice: Person
let bob: Person
const room = unique('ev-')

test.beforeAll(async ({ browser }) => {
  alice = await signUp(browser, 'ann_', 'Ann Events')
  bob = await signUp(browser, 'ben_', 'Ben Events')
  await createRoom(alice.page, 'Events', room)
  await openRoom(bob.page, room)
})

test.afterAll(async () => {
  await alice?.context.close()
  await bob?.context.close()
})

/** The message item whose body is exactly `body`. */
function item(page: Page, body: string) {
  const exact = new RegExp(`^${body.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)
  return messageList(page).locator('.message').filter({ has: page.locator('.body').filter({ hasText: exact }) })
}

/** Shows a message's action bar (hover) and clicks one of its buttons. */
async function act(page: Page, body: string, action: string) {
  const target = item(page, body)
  await target.hover()
  await target.getByRole('toolbar', { name: 'Message actions' }).getByRole('button', { name: action, exact: true }).click()
}

test('markdown shows as elements; a javascript: link stays text', async () => {
  await send(alice.page, 'plain start')
  const composer = alice.page.getByTestId('composer')
  await composer.fill('some **bold** and `code` and [bad](javascript:alert(1))')
  await composer.press('Enter')
  const shown = messageList(bob.page).locator('.message .body').filter({ hasText: 'some bold and code' })
  await expect(shown.locator('strong')).toHaveText('bold')
  await expect(shown.locator('code')).toHaveText('code')
  await expect(shown.locator('a')).toHaveCount(0)
  await expect(shown).toContainText('[bad](javascript:alert(1))')
})

test('shortcodes become emoji as they are typed', async () => {
  const composer = alice.page.getByTestId('composer')
  await composer.pressSequentially('party :tada:')
  await expect(composer).toHaveValue('party 🎉')
  await composer.press('Enter')
  await expect(item(bob.page, 'party 🎉')).toHaveCount(1)
})

test('the author edits a message inline; the other sees the new body, marked edited', async () => {
  await send(alice.page, 'first draft')
  await expect(item(bob.page, 'first draft')).toHaveCount(1)
  await act(alice.page, 'first draft', 'Edit')
  const box = alice.page.getByTestId('edit-box')
  await expect(box).toBeFocused()
  await box.fill('final text')
  await box.press('Enter')
  for (const page of [alice.page, bob.page]) {
    await expect(item(page, 'final text')).toHaveCount(1)
    await expect(item(page, 'final text').getByTestId('edited')).toHaveText('(edited)')
    await expect(item(page, 'first draft')).toHaveCount(0)
  }
  // Bob cannot edit Alice's message.
  await item(bob.page, 'final text').hover()
  await expect(item(bob.page, 'final text').getByRole('button', { name: 'Edit', exact: true })).toHaveCount(0)
})

test('Escape cancels an edit', async () => {
  await act(alice.page, 'final text', 'Edit')
  await alice.page.getByTestId('edit-box').fill('not this')
  await alice.page.getByTestId('edit-box').press('Escape')
  await expect(alice.page.getByTestId('edit-box')).toHaveCount(0)
  await expect(item(alice.page, 'final text')).toHaveCount(1)
})

test('reactions: a picker, chips with counts, highlighted when ours, a click toggles', async () => {
  await act(bob.page, 'final text', 'Add reaction')
  const picker = bob.page.getByTestId('emoji-picker')
  await picker.getByRole('searchbox', { name: 'Search emoji' }).fill('tada')
  await picker.getByRole('searchbox', { name: 'Search emoji' }).press('Enter')
  await expect(picker).toHaveCount(0)

  const bobChip = item(bob.page, 'final text').locator('[data-emoji="🎉"]')
  await expect(bobChip).toHaveAttribute('aria-pressed', 'true')
  await expect(bobChip).toContainText('1')
  const aliceChip = item(alice.page, 'final text').locator('[data-emoji="🎉"]')
  await expect(aliceChip).toHaveAttribute('aria-pressed', 'false')
  await aliceChip.click()
  await expect(aliceChip).toHaveAttribute('aria-pressed', 'true')
  await expect(aliceChip).toContainText('2')
  await expect(bobChip).toContainText('2')
  await bobChip.click() // takes Bob's back
  await expect(aliceChip).toContainText('1')
  await expect(bobChip).toHaveAttribute('aria-pressed', 'false')
})

test('a reply quotes the original; clicking the quote goes to it', async () => {
  await act(bob.page, 'final text', 'Reply')
  await expect(bob.page.getByTestId('replying-to')).toContainText('Replying to Ann Events')
  await expect(bob.page.getByTestId('composer')).toBeFocused()
  await bob.page.getByTestId('composer').fill('agreed')
  await bob.page.getByTestId('composer').press('Enter')
  await expect(bob.page.getByTestId('replying-to')).toHaveCount(0)
  for (const page of [alice.page, bob.page]) {
    const quote = item(page, 'agreed').getByTestId('reply-quote')
    await expect(quote).toContainText('Ann Events')
    await expect(quote).toContainText('final text')
  }
  await item(alice.page, 'agreed').getByTestId('reply-quote').click()
  await expect(item(alice.page, 'final text')).toBeFocused()
})

test('the author deletes a message: a tombstone for both', async () => {
  await send(alice.page, 'regret this')
  await expect(item(bob.page, 'regret this')).toHaveCount(1)
  await act(alice.page, 'regret this', 'Delete')
  const dialog = alice.page.getByRole('dialog', { name: 'Delete this message?' })
  await expect(dialog.getByTestId('delete-reason')).toHaveCount(0) // no reason for one's own
  await dialog.getByTestId('confirm-delete').click()
  for (const page of [alice.page, bob.page]) {
    await expect(item(page, 'regret this')).toHaveCount(0)
    await expect(messageList(page).getByTestId('tombstone')).toHaveCount(1)
  }
})

test("the room's owner deletes someone else's message, with a reason", async () => {
  await send(bob.page, 'spam spam')
  await expect(item(alice.page, 'spam spam')).toHaveCount(1)
  // Bob may not delete Alice's message.
  await item(bob.page, 'final text').hover()
  await expect(item(bob.page, 'final text').getByRole('button', { name: 'Delete', exact: true })).toHaveCount(0)
  await act(alice.page, 'spam spam', 'Delete')
  const dialog = alice.page.getByRole('dialog', { name: 'Delete this message?' })
  await dialog.getByTestId('delete-reason').fill('spam')
  await dialog.getByTestId('confirm-delete').click()
  for (const page of [alice.page, bob.page]) {
    await expect(item(page, 'spam spam')).toHaveCount(0)
    await expect(messageList(page).getByTestId('tombstone')).toHaveCount(2)
  }
})

/** Serious or critical axe violations on the page as it is. */
async function axeViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze()
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`)
}

test('the actions are reachable by keyboard; axe finds no serious issue with them or the picker', async () => {
  const target = item(alice.page, 'agreed')
  await target.focus()
  await alice.page.keyboard.press('Tab') // into the reply quote, then the action bar
  const toolbar = target.getByRole('toolbar', { name: 'Message actions' })
  await toolbar.getByRole('button', { name: 'Add reaction' }).focus()
  await expect(toolbar).toBeVisible()
  await alice.page.keyboard.press('Enter')
  await expect(alice.page.getByRole('searchbox', { name: 'Search emoji' })).toBeFocused()
  expect(await axeViolations(alice.page)).toEqual([])
  await alice.page.keyboard.press('Escape')
  await expect(alice.page.getByTestId('emoji-picker')).toHaveCount(0)
  await expect(toolbar.getByRole('button', { name: 'Add reaction' })).toBeFocused()
})

test('after a reload both see the same state, from the server', async () => {
  for (const person of [alice, bob]) {
    await person.page.reload()
    await expect(person.page.getByRole('status').getByText('Live')).toBeVisible()
    const { page } = person
    await expect(item(page, 'final text').getByTestId('edited')).toHaveText('(edited)')
    await expect(item(page, 'first draft')).toHaveCount(0)
    const chip = item(page, 'final text').locator('[data-emoji="🎉"]')
    await expect(chip).toContainText('1')
    await expect(chip).toHaveAttribute('aria-pressed', person === alice ? 'true' : 'false')
    await expect(item(page, 'agreed').getByTestId('reply-quote')).toContainText('final text')
    await expect(messageList(page).getByTestId('tombstone')).toHaveCount(2)
    await expect(item(page, 'regret this')).toHaveCount(0)
    await expect(item(page, 'spam spam')).toHaveCount(0)
  }
  // A change made while Bob is away reaches him when he is back (since replay).
  await bob.page.goto('/')
  await act(alice.page, 'final text', 'Edit')
  await alice.page.getByTestId('edit-box').fill('edited while away')
  await alice.page.getByTestId('edit-box').press('Enter')
  await expect(item(alice.page, 'edited while away')).toHaveCount(1)
  await openRoom(bob.page, room)
  await expect(item(bob.page, 'edited while away')).toHaveCount(1)
})
