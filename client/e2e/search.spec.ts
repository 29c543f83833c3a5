import { expect, test, type Page } from '@playwright/test'

import { createRoom, messageList, send, signUp, unique, type Person } from './helpers'

// One story: Ann writes in a public room (an old message, then a page's worth of newer ones)
// and in a private one; Bob searches, opens a result in its room, and reloads its permalink.
test.describe.configure({ mode: 'serial' })

let ann: Person
let bob: Person
const room = unique('find-')
const secretRoom = unique('hush-')
const needle = `zephyr${Math.random().toString(36).slice(2, 8)}`
const oldBody = `The launch codeword is ${needle} for tomorrow`

test.beforeAll(async ({ browser }) => {
  ann = await signUp(browser, 'ann_', 'Ann Searcher')
  bob = await signUp(browser, 'bob_', 'Bob Finder')
})

test.afterAll(async () => {
  await ann?.context.close()
  await bob?.context.close()
})

/** Opens the search with the keyboard, searches until the archiver has the message. */
async function searchFor(page: Page, words: string, results: number) {
  await expect(page.getByTestId('search-open')).toBeVisible() // the app is up
  await page.keyboard.press('Control+K')
  const dialog = page.getByRole('dialog', { name: 'Search messages' })
  await expect(dialog).toBeVisible()
  const input = dialog.getByTestId('search-input')
  await expect(input).toBeFocused()
  await input.fill(words)
  // Only archived messages are found: the archiver takes about a second.
  await expect(async () => {
    await input.press('Enter')
    await expect(dialog.getByTestId('search-result')).toHaveCount(results, { timeout: 1_500 })
    await expect(dialog.getByRole('status')).toHaveCount(0, { timeout: 1_500 })
  }).toPass({ timeout: 20_000, intervals: [1_000] })
  return dialog
}

test('one writes, the other finds it, opens it in context, and reloads its permalink', async () => {
  await createRoom(ann.page, 'Search lounge', room)
  await send(ann.page, oldBody)
  for (let i = 0; i < 52; i++) await send(ann.page, `filler message ${i}`)
  await createRoom(ann.page, 'Hush', secretRoom, true)
  await send(ann.page, `private ${needle} plans`)

  await bob.page.goto('/')
  const dialog = await searchFor(bob.page, needle, 1) // the private room's is never found
  const result = dialog.getByTestId('search-result')
  await expect(result).toContainText('Search lounge')
  await expect(result).toContainText('Ann Searcher')
  await expect(result.locator('mark')).toHaveText(needle)
  await result.click()

  await expect(bob.page).toHaveURL(new RegExp(`/r/${room}/m/\\d+-\\d+$`))
  const target = messageList(bob.page).locator('.message', { hasText: oldBody })
  await expect(target).toBeVisible() // loaded around it: it is older than the latest page
  await expect(target).toBeInViewport()
  await expect(target).toHaveAttribute('data-focused', '')
  const permalink = bob.page.url()

  await bob.page.reload()
  await expect(bob.page).toHaveURL(permalink)
  await expect(target).toBeInViewport()
  await expect(messageList(bob.page).locator('.message', { hasText: 'filler message 51' })).toHaveCount(1)

  // Ann's own search finds both rooms; the private one only for her.
  await ann.page.goto('/')
  const hers = await searchFor(ann.page, needle, 2)
  await expect(hers.getByTestId('search-result').filter({ hasText: 'Hush' })).toHaveCount(1)
})

test('the search box opens with / outside the composer and says when nothing is found', async () => {
  await bob.page.locator('body').click()
  await bob.page.keyboard.press('Escape')
  await bob.page.getByTestId('search-open').click()
  const dialog = bob.page.getByRole('dialog', { name: 'Search messages' })
  await dialog.getByTestId('search-input').fill(`nothing${needle}`)
  await dialog.getByTestId('search-input').press('Enter')
  await expect(dialog.getByText('No messages found.')).toBeVisible()
  // Escape in a search field clears it first (the browser's), then closes the dialog.
  await expect(async () => {
    await bob.page.keyboard.press('Escape')
    await expect(dialog).toBeHidden({ timeout: 500 })
  }).toPass({ timeout: 5_000 })
  await bob.page.getByTestId('messages').click()
  await bob.page.keyboard.press('/')
  await expect(dialog).toBeVisible()
})
