import AxeBuilder from '@axe-core/playwright'
import { expect, test, type Page } from '@playwright/test'

import {
  PASSWORD,
  PHONE,
  messageList,
  messagesWithBody,
  openRoom,
  screenshot,
  send,
  setTheme,
  signInElsewhere,
  signUp,
  unique,
  type Person,
} from './helpers'

// Everyday flows of issue 11: where you land, rooms in any script, the offline queue.
test.describe.configure({ mode: 'serial' })

let erin: Person
let finn: Person
const room = unique('daily-')

test.beforeAll(async ({ browser }) => {
  erin = await signUp(browser, 'erin_', 'Erin Brockovich')
  finn = await signUp(browser, 'finn_', 'Finn 芬恩')
})

test.afterAll(async () => {
  await erin?.context.close()
  await finn?.context.close()
})

test('after sign-up you land in the Lobby; after sign-in, in the room you had open last', async () => {
  await expect(erin.page).toHaveURL(/\/r\/lobby$/)
  await expect(erin.page.getByTestId('room-title')).toHaveText('Lobby')
  await expect(erin.page.getByText('Pick a room on the left, or create one.')).toHaveCount(0)

  await erin.page.getByRole('button', { name: 'New room' }).click()
  const dialog = erin.page.getByRole('dialog', { name: 'New room' })
  await dialog.getByLabel('Title').fill('Daily standup')
  await dialog.getByLabel('Address').fill(room)
  await dialog.getByRole('button', { name: 'New room' }).click()
  await expect(erin.page).toHaveURL(new RegExp(`/r/${room}$`))
  await expect(erin.page.getByText('This is the beginning of #Daily standup.')).toBeVisible()

  // Signed out and in again on this browser: back in that room.
  await erin.page.getByRole('button', { name: 'Sign out' }).click()
  await expect(erin.page).toHaveURL(/\/signin$/)
  await erin.page.getByLabel('Username').fill(erin.username)
  await erin.page.getByLabel('Password').fill(PASSWORD)
  await erin.page.getByRole('button', { name: 'Sign in' }).click()
  await expect(erin.page).toHaveURL(new RegExp(`/r/${room}$`))
  await expect(erin.page.getByTestId('room-title')).toHaveText('Daily standup')
})

test('on a new device, sign-in lands in the Lobby', async ({ browser }) => {
  const laptop = await signInElsewhere(browser, finn)
  await expect(laptop.page).toHaveURL(/\/r\/lobby$/)
  await expect(laptop.page.getByTestId('room-title')).toHaveText('Lobby')
  await laptop.context.close()
})

test('a room titled in Chinese gets an address the user can keep or edit', async () => {
  await erin.page.getByRole('button', { name: 'New room' }).click()
  const dialog = erin.page.getByRole('dialog', { name: 'New room' })
  await dialog.getByLabel('Title').fill('产品讨论')
  const address = dialog.getByLabel('Address')
  await expect(address).toHaveValue(/^room-[a-z0-9]{6}$/)
  const suggested = await address.inputValue()
  // Typing more of the title keeps the same address; a Latin title suggests from it again.
  await dialog.getByLabel('Title').fill('产品讨论组')
  await expect(address).toHaveValue(suggested)
  await screenshot(erin.page, 'desktop-create-room-chinese-light')
  const create = dialog.getByRole('button', { name: 'New room' })
  await expect(create).toBeEnabled()
  await create.click()
  await expect(erin.page).toHaveURL(new RegExp(`/r/${suggested}$`))
  await expect(erin.page.getByTestId('room-title')).toHaveText('产品讨论组')
})

test('messages written offline are queued, survive 10 s, and go in order when back', async () => {
  await openRoom(erin.page, room)
  await openRoom(finn.page, room)
  await expect(erin.page.getByTestId('online').locator(`[data-username="${finn.username}"]`)).toBeVisible()
  await send(erin.page, 'before the outage')
  await expect(messagesWithBody(finn.page, 'before the outage')).toHaveCount(1)

  await erin.context.setOffline(true)
  const banner = erin.page.getByTestId('offline-banner')
  await expect(banner).toContainText('You are offline.')
  // Who is online is not known while offline: no stale count, no green dots.
  await expect(erin.page.getByTestId('online-count')).toHaveText('?')
  await expect(erin.page.getByTestId('online')).toHaveAttribute('data-known', 'false')
  await expect(erin.page.getByTestId('joined-rooms').locator('.online')).toHaveCount(0)

  const composer = erin.page.getByTestId('composer')
  const bodies = ['offline one', 'offline two', 'offline three']
  for (const body of bodies) {
    await composer.fill(body)
    await composer.press('Enter')
  }
  const queued = messageList(erin.page).locator('.message[data-status="queued"]')
  await expect(queued).toHaveCount(3)
  await expect(queued.first()).toContainText('Queued · sends when you are back online')
  await expect(banner).toContainText('3 messages waiting.')
  await screenshot(erin.page, 'desktop-offline-queue-light')

  // Longer than the ack timeout: still queued, never "Not sent · No answer from the server".
  await erin.page.waitForTimeout(11_000)
  await expect(queued).toHaveCount(3)
  await expect(erin.page.getByText('Not sent')).toHaveCount(0)

  await erin.context.setOffline(false)
  await expect(banner).toHaveCount(0)
  await expect(messageList(erin.page).locator('.message[data-status="queued"]')).toHaveCount(0)
  await expect(messageList(erin.page).locator('.message[data-status="pending"]')).toHaveCount(0)
  for (const body of bodies) await expect(messagesWithBody(finn.page, body)).toHaveCount(1)
  const seen = await messageList(finn.page).locator('.message .body').allInnerTexts()
  expect(seen.filter((text) => text.startsWith('offline '))).toEqual(bodies)
  // Each once, on both sides.
  for (const body of bodies) await expect(messagesWithBody(erin.page, body)).toHaveCount(1)
  await expect(erin.page.getByTestId('online-count')).toHaveText('2')
  await expect(erin.page.getByTestId('joined-rooms').locator(`[data-room="${room}"] .online`)).toContainText('2')
})

/** A stand-in for the browser's Notification API and the tab's visibility, which headless
 * Chromium cannot show or change: what the page does with them is what is tested. */
const NOTIFICATION_STUB = () => {
  const shown: { title: string; body: string | undefined }[] = []
  let hidden = false
  class StubNotification {
    static permission: NotificationPermission = 'default'
    static async requestPermission() {
      StubNotification.permission = 'granted'
      return StubNotification.permission
    }
    onclick: (() => void) | null = null
    constructor(title: string, options?: NotificationOptions) {
      shown.push({ title, body: options?.body })
    }
    close() {}
  }
  Object.assign(window, {
    Notification: StubNotification,
    shownNotifications: shown,
    setTabHidden(value: boolean) {
      hidden = value
      document.dispatchEvent(new Event('visibilitychange'))
    },
  })
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden })
  Object.defineProperty(document, 'visibilityState', {
    configurable: true,
    get: () => (hidden ? 'hidden' : 'visible'),
  })
}

type StubbedWindow = Window & {
  shownNotifications: { title: string; body: string | undefined }[]
  setTabHidden(value: boolean): void
}

test('@mentions autocomplete, highlight, notify while hidden, count in the title, and mute', async () => {
  await finn.context.addInitScript(NOTIFICATION_STUB)
  await finn.page.reload()
  await expect(finn.page.getByTestId('room-title')).toHaveText('Daily standup')

  // Finn turns notifications on from the room's bell: the browser asks only now.
  await finn.page.getByTestId('notify-settings').click()
  const settings = finn.page.getByRole('dialog', { name: 'Notifications' })
  await settings.getByLabel(/Desktop notifications/).check()
  await expect(settings.getByLabel(/Desktop notifications/)).toBeChecked()
  await settings.getByRole('button', { name: 'Done' }).click()

  // Erin mentions Finn, picking him from the suggestions.
  const composer = erin.page.getByTestId('composer')
  await composer.pressSequentially('@fin', { delay: 20 })
  const suggestions = erin.page.getByTestId('mention-suggestions')
  await expect(suggestions.getByRole('option', { name: new RegExp(finn.username) })).toBeVisible()
  await screenshot(erin.page, 'desktop-mention-autocomplete-light')
  await composer.press('Enter')
  await expect(composer).toHaveValue(`@${finn.username} `)
  await expect(suggestions).toHaveCount(0)
  await composer.pressSequentially('standup in 5?')
  await composer.press('Enter')
  const mentionBody = `@${finn.username} standup in 5?`
  await expect(messagesWithBody(finn.page, mentionBody)).toHaveCount(1)
  const mentioned = messageList(finn.page).locator('.message.mentioned')
  await expect(mentioned).toHaveCount(1)
  await expect(mentioned.locator('.mention.me')).toHaveText(`@${finn.username}`)

  // Tab hidden: a plain message counts in the title, a mention also notifies.
  await finn.page.evaluate(() => (window as unknown as StubbedWindow).setTabHidden(true))
  await send(erin.page, 'plain words')
  await send(erin.page, `@${finn.username} are you there?`)
  await expect(finn.page).toHaveTitle(/^\(2\) Daily standup · Chatroom$/)
  const shown = () => finn.page.evaluate(() => (window as unknown as StubbedWindow).shownNotifications)
  await expect.poll(shown).toEqual([
    { title: 'Erin Brockovich · Daily standup', body: `@${finn.username} are you there?` },
  ])
  await finn.page.evaluate(() => (window as unknown as StubbedWindow).setTabHidden(false))
  await expect(finn.page).toHaveTitle('Daily standup · Chatroom')

  // Muted: nothing notifies or counts.
  await finn.page.getByTestId('notify-settings').click()
  await settings.getByLabel(/Mute #Daily standup/).check()
  await settings.getByRole('button', { name: 'Done' }).click()
  await expect(finn.page.getByRole('button', { name: 'Notifications for this room (muted)' })).toBeVisible()
  await finn.page.evaluate(() => (window as unknown as StubbedWindow).setTabHidden(true))
  await send(erin.page, '@room muted for Finn')
  await expect(messagesWithBody(finn.page, '@room muted for Finn')).toHaveCount(1)
  expect(await shown()).toHaveLength(1)
  await expect(finn.page).toHaveTitle('Daily standup · Chatroom')
  await finn.page.evaluate(() => (window as unknown as StubbedWindow).setTabHidden(false))
})

/** Serious and critical axe findings (WCAG 2.2 A/AA), as "rule: targets" lines. */
async function seriousIssues(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze()
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.id}: ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`)
}

test('axe finds no serious issue; new messages are announced, keystrokes are not', async () => {
  const page = finn.page
  const toggle = page.getByRole('button', { name: /online: show who/ })
  if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click()
  await expect(page.getByTestId('online')).toBeVisible()
  expect(await seriousIssues(page)).toEqual([])

  await page.getByRole('button', { name: 'New room' }).click()
  await expect(page.getByRole('dialog', { name: 'New room' })).toBeVisible()
  expect(await seriousIssues(page)).toEqual([])
  await page.getByRole('dialog', { name: 'New room' }).getByRole('button', { name: 'Cancel' }).click()

  // The length counter is not a live region (it was read out on every keystroke)...
  await expect(page.locator('#composer-counter')).not.toHaveAttribute('aria-live', /.*/)
  await page.getByTestId('composer').pressSequentially('typing', { delay: 10 })
  await expect(page.locator('#composer-counter')).toHaveText('6 / 3000')
  await page.getByTestId('composer').fill('')
  // ...while a new message of someone else is, politely.
  const announcer = page.getByTestId('announcer')
  await expect(announcer).toHaveAttribute('aria-live', 'polite')
  // What came before (the last test's messages) is announced first, within 3 s...
  const lastBody = await page.getByTestId('messages').locator('li p').last().innerText()
  await expect(announcer).toHaveText(new RegExp(`${lastBody.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`))
  // ...then a new message alone is announced alone.
  await send(erin.page, 'announce me, please')
  await expect(announcer).toHaveText(`${erin.displayName}: announce me, please`)
})

test('a new display name shows on the next message and in the online list of others', async () => {
  await erin.page.getByRole('button', { name: 'Account' }).click()
  const account = erin.page.getByRole('dialog', { name: 'Account' })
  const field = account.getByLabel('Display name')
  await expect(field).toHaveValue('Erin Brockovich')
  await field.fill('   ')
  await account.getByRole('button', { name: 'Save' }).click()
  await expect(account.getByText('1-64 characters')).toBeVisible()
  await field.fill('Erin B. 艾琳')
  await account.getByRole('button', { name: 'Save' }).click()
  await expect(account.getByText('Saved. Others see the new name from your next message.')).toBeVisible()
  await screenshot(erin.page, 'desktop-profile-light')
  await account.getByRole('button', { name: 'Close' }).first().click()
  await expect(erin.page.getByTestId('me')).toHaveText('Erin B. 艾琳')
  await expect(erin.page.getByRole('status').getByText('Live')).toBeVisible()

  await send(erin.page, 'same me, new name')
  await expect(messagesWithBody(finn.page, 'same me, new name')).toHaveCount(1)
  await expect(messageList(finn.page).locator('.author').last()).toHaveText('Erin B. 艾琳')
  await expect(finn.page.getByTestId('online').locator(`[data-username="${erin.username}"]`)).toContainText(
    'Erin B. 艾琳',
  )
  // After a reload her name is the new one there too (the session carries it).
  await erin.page.reload()
  await expect(erin.page.getByTestId('me')).toHaveText('Erin B. 艾琳')
})

test('phone, dark: the offline queue, mentions and notification settings', async ({ browser }) => {
  const phone = await signInElsewhere(browser, finn)
  await setTheme(phone.page, 'dark')
  await phone.page.setViewportSize(PHONE)
  await phone.page.goto(`/r/${room}`)
  await expect(phone.page.getByTestId('room-title')).toHaveText('Daily standup')
  await expect(messagesWithBody(phone.page, 'same me, new name')).toHaveCount(1)
  await screenshot(phone.page, 'phone-mentions-dark')

  await phone.page.getByTestId('notify-settings').click()
  await expect(phone.page.getByRole('dialog', { name: 'Notifications' })).toBeVisible()
  await screenshot(phone.page, 'phone-notifications-dark')
  await phone.page.getByRole('dialog', { name: 'Notifications' }).getByRole('button', { name: 'Done' }).click()

  await phone.context.setOffline(true)
  await expect(phone.page.getByTestId('offline-banner')).toBeVisible()
  await phone.page.getByTestId('composer').fill('sent from the train')
  await phone.page.getByTestId('composer').press('Enter')
  await expect(messageList(phone.page).locator('.message[data-status="queued"]')).toHaveCount(1)
  await screenshot(phone.page, 'phone-offline-queue-dark')
  await phone.context.setOffline(false)
  await expect(messagesWithBody(erin.page, 'sent from the train')).toHaveCount(1)
  await phone.context.close()
})
