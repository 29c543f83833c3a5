import { expect, test, type Page } from '@playwright/test'

import {
  createRoom,
  joinedRoom,
  messageList,
  messagesWithBody,
  openRoom,
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
