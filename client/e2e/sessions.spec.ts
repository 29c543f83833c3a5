import { expect, test, type Page } from '@playwright/test'

import {
  PASSWORD,
  messageList,
  screenshot,
  send,
  signInElsewhere,
  signUp,
  type Person,
} from './helpers'

// One person on several devices (browser contexts, each a session of its own). Runs after
// chat.spec.ts, whose first account is the server's admin.
test.describe.configure({ mode: 'serial' })

const NEW_PASSWORD = 'a brand new passphrase'

let dana: Person

test.beforeAll(async ({ browser }) => {
  dana = await signUp(browser, 'dana_', 'Dana Scully')
})

test.afterAll(async () => {
  await dana?.context.close()
})

async function openAccount(page: Page) {
  await page.getByRole('button', { name: 'Account' }).click()
  return page.getByRole('dialog', { name: 'Account' })
}

/** The page was sent to the sign-in page because its session ended elsewhere. */
async function signedOutByTheServer(page: Page) {
  await expect(page).toHaveURL(/\/signin\?ended=1$/)
  await expect(page.getByTestId('session-ended')).toHaveText(
    'Your session has ended: you signed out, or the password was changed. Please sign in again.',
  )
}

async function signIn(page: Page, username: string, password: string) {
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

test('a message and the online list show the @username beside the display name', async () => {
  await dana.page.goto('/r/lobby')
  await send(dana.page, 'who am I')
  await expect(messageList(dana.page).getByText(`@${dana.username}`)).toBeVisible()
  const online = dana.page.getByTestId('online').locator(`[data-username="${dana.username}"]`)
  await expect(online).toContainText(dana.displayName)
  await expect(online).toContainText(`@${dana.username}`)
})

test('changing the password on one device signs the other devices out at once', async ({ browser }) => {
  const laptop = await signInElsewhere(browser, dana)
  await laptop.page.goto('/r/lobby')
  await expect(laptop.page.getByRole('status').getByText('Live')).toBeVisible()

  const dialog = await openAccount(dana.page)
  await expect(dialog.getByText(`@${dana.username}`)).toBeVisible()
  // A wrong current password is said so, on its field.
  await dialog.getByLabel('Current password').fill('not my password')
  await dialog.getByLabel('New password').fill(NEW_PASSWORD)
  await dialog.getByRole('button', { name: 'Change password' }).click()
  await expect(dialog.getByTestId('current-password-error')).toHaveText('This is not your current password')

  await dialog.getByLabel('Current password').fill(PASSWORD)
  await dialog.getByRole('button', { name: 'Change password' }).click()
  await expect(dialog.getByRole('status')).toHaveText('Password changed. Your other devices were signed out.')
  await screenshot(dana.page, 'desktop-account-light')

  // The laptop's socket was closed by the server: it goes to the sign-in page and says why.
  await signedOutByTheServer(laptop.page)
  await signIn(laptop.page, dana.username, PASSWORD)
  await expect(laptop.page.getByTestId('form-error')).toHaveText('Wrong username or password')
  await signIn(laptop.page, dana.username, NEW_PASSWORD)
  await expect(laptop.page.getByTestId('me')).toHaveText(dana.displayName)

  // This device stays signed in and live.
  await dialog.getByRole('button', { name: 'Close' }).click()
  await expect(dana.page.getByRole('status').getByText('Live')).toBeVisible()
  await send(dana.page, 'still here after the change')
  await laptop.context.close()
})

test('logging out everywhere signs out every device, this one included', async ({ browser }) => {
  const phone = await browser.newContext({ locale: 'en-US' })
  const page = await phone.newPage()
  await page.goto('/signin')
  await signIn(page, dana.username, NEW_PASSWORD)
  await expect(page.getByRole('status').getByText('Live')).toBeVisible()

  const dialog = await openAccount(dana.page)
  await dialog.getByRole('button', { name: 'Log out everywhere' }).click()
  await expect(dana.page).toHaveURL(/\/signin$/)
  await signedOutByTheServer(page)
  // Neither browser's session works any more.
  for (const request of [dana.page.request, page.request]) {
    expect((await request.get('/api/me')).status()).toBe(401)
  }
  await phone.close()
})
