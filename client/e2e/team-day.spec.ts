import { expect, test, type Page } from '@playwright/test'

import {
  PHONE,
  browseRooms,
  createRoom,
  directoryRoom,
  joinedRoom,
  messageList,
  messagesWithBody,
  openRoom,
  screenshot,
  send,
  signInElsewhere,
  signUp,
  unique,
  type Person,
} from './helpers'

// A team's day: what did I miss (read state on the server), rooms that change while you
// are in them (live membership, Leave), and direct messages. Two people for the file.
test.describe.configure({ mode: 'serial' })

let dana: Person
let eli: Person
const room = unique('standup-')

test.beforeAll(async ({ browser }) => {
  dana = await signUp(browser, 'dana_', 'Dana')
  eli = await signUp(browser, 'eli_', 'Eli')
})

test.afterAll(async () => {
  await dana?.context.close()
  await eli?.context.close()
})

/** The number on a room's unread badge (the part people see). */
function unreadBadge(page: Page, slug: string) {
  return joinedRoom(page, slug).getByTestId('unread').locator('[aria-hidden="true"]')
}

test('unread counts and the "New messages" divider survive a reload and follow to another device', async ({
  browser,
}) => {
  await createRoom(dana.page, 'Standup', room)
  await send(dana.page, 'morning all')
  await openRoom(eli.page, room)
  await expect(messagesWithBody(eli.page, 'morning all')).toHaveCount(1)
  // Eli is elsewhere (the lobby) while Dana writes.
  await joinedRoom(eli.page, 'lobby').click()
  await send(dana.page, 'first thing you missed')
  await send(dana.page, `@${eli.username} can you look at this?`)
  await send(dana.page, 'third thing')
  await expect(unreadBadge(eli.page, room)).toHaveText('3')
  await expect(joinedRoom(eli.page, room).getByTestId('mentioned')).toBeVisible()

  // After a reload the count is still there (the server keeps the read mark)...
  await eli.page.reload()
  await expect(eli.page.getByRole('status').getByText('Live')).toBeVisible()
  await expect(unreadBadge(eli.page, room)).toHaveText('3')
  // ... and on another device too.
  const phone = await signInElsewhere(browser, eli)
  await expect(unreadBadge(phone.page, room)).toHaveText('3')

  // Opening the room shows the divider right above the first message he missed.
  await joinedRoom(eli.page, room).click()
  const divider = messageList(eli.page).locator('.new-marker')
  await expect(divider).toHaveCount(1)
  const afterDivider = messageList(eli.page).locator('.new-marker + * .body').first()
  await expect(afterDivider).toHaveText('first thing you missed')
  await screenshot(eli.page, 'daily-new-messages-desktop-light')
  await expect(unreadBadge(eli.page, room)).toHaveCount(0)
  // Reading on the laptop clears the badge on the phone, live.
  await expect(unreadBadge(phone.page, room)).toHaveCount(0)
  await expect(joinedRoom(phone.page, room).getByTestId('mentioned')).toHaveCount(0)

  // A return visit after reading shows no divider and no badge.
  await eli.page.reload()
  await expect(eli.page.getByRole('status').getByText('Live')).toBeVisible()
  await expect(messagesWithBody(eli.page, 'third thing')).toHaveCount(1)
  await expect(messageList(eli.page).locator('.new-marker')).toHaveCount(0)
  await phone.context.close()
})

test('membership is live: added, a new room, the member list, removed with a notice', async () => {
  const hideout = unique('hideout-')
  await createRoom(dana.page, 'Hideout', hideout, true)
  await send(dana.page, 'members only')
  // Eli stays where he is: no reload from here on.
  await joinedRoom(eli.page, 'lobby').click()
  await expect(joinedRoom(eli.page, hideout)).toHaveCount(0)

  await dana.page.getByRole('button', { name: 'Members' }).click()
  const dialog = dana.page.getByRole('dialog', { name: 'Members' })
  await expect(dialog.getByTestId('members').locator(`[data-username="${dana.username}"]`)).toBeVisible()
  await expect(dialog.getByText('Only the owner can add or remove members.')).toHaveCount(0)
  await dialog.getByLabel('Username').fill(eli.username)
  await dialog.getByRole('button', { name: 'Add' }).click()
  await expect(dialog.getByTestId('members').locator(`[data-username="${eli.username}"]`)).toBeVisible()
  await dialog.getByRole('button', { name: 'Close' }).click()

  // The room appears in Eli's sidebar at once, and he can see who is in it.
  await expect(joinedRoom(eli.page, hideout)).toBeVisible()
  await joinedRoom(eli.page, hideout).click()
  await expect(messagesWithBody(eli.page, 'members only')).toHaveCount(1)
  await eli.page.getByRole('button', { name: 'Members' }).click()
  const eliDialog = eli.page.getByRole('dialog', { name: 'Members' })
  await expect(eliDialog.getByTestId('members').locator(`[data-username="${dana.username}"]`)).toBeVisible()
  await expect(eliDialog.getByRole('button', { name: 'Add' })).toHaveCount(0)
  // From a member's name, a direct conversation is one click away.
  await expect(eliDialog.getByRole('button', { name: 'Message Dana' })).toBeVisible()
  await eliDialog.getByRole('button', { name: 'Close' }).click()

  // A new public room shows up at once in a directory that is open, without a reload.
  const plaza = unique('plaza-')
  const directory = await browseRooms(eli.page, plaza)
  await expect(directory.getByText('No rooms found.')).toBeVisible()
  await createRoom(dana.page, 'Plaza', plaza)
  await expect(directory.getByTestId('room-directory').locator(`[data-room="${plaza}"]`)).toBeVisible()
  await directory.getByRole('button', { name: 'Close' }).click()

  // Removed: Eli is told, the room closes and leaves his sidebar; he cannot write to it.
  await openRoom(dana.page, hideout)
  await dana.page.getByRole('button', { name: 'Members' }).click()
  await dialog.getByRole('button', { name: `Remove ${eli.username}`, exact: true }).click()
  await expect(dialog.getByTestId('members').locator(`[data-username="${eli.username}"]`)).toHaveCount(0)
  await expect(eli.page.locator('.toast')).toHaveText(/You were removed from Hideout/)
  await screenshot(eli.page, 'daily-removed-desktop-light')
  await expect(eli.page).toHaveURL(/\/$/)
  await expect(joinedRoom(eli.page, hideout)).toHaveCount(0)
  await expect(eli.page.getByTestId('composer')).toHaveCount(0)
  await dialog.getByRole('button', { name: 'Close' }).click()
})

test('Leave asks first, leaves on the server, and every device of the user follows', async ({ browser }) => {
  await openRoom(eli.page, room)
  const phone = await signInElsewhere(browser, eli)
  await expect(joinedRoom(phone.page, room)).toBeVisible()

  const leave = eli.page.getByRole('button', { name: 'Leave room' })
  await leave.click()
  const confirm = eli.page.getByRole('dialog', { name: 'Leave Standup?' })
  await expect(confirm).toBeVisible()
  await screenshot(eli.page, 'daily-leave-desktop-light')
  await confirm.getByRole('button', { name: 'Cancel' }).click()
  await expect(eli.page).toHaveURL(new RegExp(`/r/${room}$`))
  await expect(joinedRoom(eli.page, room)).toBeVisible()

  await leave.click()
  await eli.page.getByTestId('confirm-leave').click()
  await expect(eli.page).toHaveURL(/\/$/)
  await expect(joinedRoom(eli.page, room)).toHaveCount(0)
  // The other device drops it live; after a reload the server still has him out.
  await expect(joinedRoom(phone.page, room)).toHaveCount(0)
  await eli.page.reload()
  await expect(eli.page.getByRole('status').getByText('Live')).toBeVisible()
  await expect(joinedRoom(eli.page, room)).toHaveCount(0)
  await expect(await directoryRoom(eli.page, room)).toBeVisible() // to join again
  await eli.page.getByRole('dialog', { name: 'Browse rooms' }).getByRole('button', { name: 'Close' }).click()
  await phone.context.close()
})

test('a direct message starts from a name, shows under Direct messages, and is found again', async () => {
  await joinedRoom(eli.page, 'lobby').click()
  await joinedRoom(dana.page, 'lobby').click()
  const eliOnline = dana.page.getByTestId('online').locator(`[data-username="${eli.username}"]`)
  await eliOnline.getByRole('button', { name: 'Message Eli' }).click()
  await expect(dana.page).toHaveURL(/\/r\/dm\.[0-9a-f]{24}$/)
  const address = dana.page.url()
  await expect(dana.page.getByTestId('room-title')).toHaveText('Eli')
  await send(dana.page, 'psst, lunch?')

  // Eli sees the conversation arrive under Direct messages, named after Dana, unread.
  const conversation = eli.page.getByTestId('dms').locator('[data-room^="dm."]')
  await expect(conversation).toHaveText(/Dana/)
  await expect(conversation.getByTestId('unread').locator('[aria-hidden="true"]')).toHaveText('1')
  await expect(eli.page.getByTestId('joined-rooms').locator('[data-room^="dm."]')).toHaveCount(0)
  await conversation.click()
  await expect(messagesWithBody(eli.page, 'psst, lunch?')).toHaveCount(1)
  await send(eli.page, 'yes!')
  await expect(messagesWithBody(dana.page, 'yes!')).toHaveCount(1)

  // Started again by username from the sidebar: the same conversation, not a new one.
  await joinedRoom(dana.page, 'lobby').click()
  await dana.page.getByRole('button', { name: 'New conversation' }).click()
  const dialog = dana.page.getByRole('dialog', { name: 'New conversation' })
  await dialog.getByLabel('Usernames').fill(eli.username)
  await dialog.getByRole('button', { name: 'Start' }).click()
  await expect(dana.page).toHaveURL(address)
  await expect(messagesWithBody(dana.page, 'yes!')).toHaveCount(1)
  await expect(dana.page.getByTestId('dms').locator('[data-room^="dm."]')).toHaveCount(1)
  await screenshot(dana.page, 'daily-dm-desktop-light')
})

test('on a phone, dark: the conversation and the room list with its badges (screenshots)', async ({
  browser,
}) => {
  // Eli looks elsewhere while Dana mentions him in their conversation.
  await joinedRoom(eli.page, 'lobby').click()
  await expect(eli.page.getByTestId('room-title')).toHaveText('Lobby')
  await send(dana.page, `@${eli.username} see you at noon`)
  const context = await browser.newContext({
    viewport: PHONE,
    locale: 'en-US',
    colorScheme: 'dark',
    storageState: await eli.context.storageState(),
  })
  await context.addInitScript(() => localStorage.setItem('chatroom.theme', 'dark'))
  const page = await context.newPage()
  await page.goto('/')
  await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark')
  await page.getByRole('button', { name: 'Open room list' }).click()
  const conversation = page.getByTestId('dms').locator('[data-room^="dm."]')
  await expect(conversation.getByTestId('mentioned')).toBeVisible()
  await screenshot(page, 'daily-rooms-phone-dark')
  await conversation.click()
  await expect(messagesWithBody(page, `@${eli.username} see you at noon`)).toHaveCount(1)
  await screenshot(page, 'daily-dm-phone-dark')
  await context.close()
})
