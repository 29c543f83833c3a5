import { expect, type Browser, type BrowserContext, type Page } from '@playwright/test'

export const DESKTOP = { width: 1280, height: 800 }
export const PHONE = { width: 390, height: 844 }
export const PASSWORD = 'correct horse battery'

const SCREENSHOTS = new URL('./screenshots/', import.meta.url).pathname

/** A name unique to this run, valid as a username and as a room slug suffix. */
export function unique(prefix: string): string {
  const stamp = Date.now().toString(36)
  const random = Math.random().toString(36).slice(2, 6)
  return `${prefix}${stamp}${random}`.toLowerCase().slice(0, 32)
}

export interface Person {
  username: string
  displayName: string
  context: BrowserContext
  page: Page
  /** Set when a dialog (alert, confirm...) opened in this person's page. */
  dialogs: string[]
}

/** A new browser context (English, light theme): a device of its own, with no cookie yet. */
async function newDevice(browser: Browser) {
  const context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US', colorScheme: 'light' })
  const page = await context.newPage()
  const dialogs: string[] = []
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message())
    void dialog.dismiss()
  })
  return { context, page, dialogs }
}

async function signedInAs(page: Page, displayName: string) {
  await expect(page.getByTestId('me')).toHaveText(displayName)
  await expect(page.getByRole('status').getByText('Live')).toBeVisible()
}

/** A new browser context that signs up through the UI. */
export async function signUp(browser: Browser, prefix: string, displayName: string): Promise<Person> {
  const device = await newDevice(browser)
  const username = unique(prefix)
  await device.page.goto('/signup')
  await device.page.getByLabel('Username').fill(username)
  await device.page.getByLabel('Display name').fill(displayName)
  await device.page.getByLabel('Password').fill(PASSWORD)
  await device.page.getByRole('button', { name: 'Sign up' }).click()
  await signedInAs(device.page, displayName)
  return { username, displayName, ...device }
}

/** The same person on another device: a new browser context that signs in through the UI. */
export async function signInElsewhere(browser: Browser, person: Person): Promise<Person> {
  const device = await newDevice(browser)
  await device.page.goto('/signin')
  await device.page.getByLabel('Username').fill(person.username)
  await device.page.getByLabel('Password').fill(PASSWORD)
  await device.page.getByRole('button', { name: 'Sign in' }).click()
  await signedInAs(device.page, person.displayName)
  return { ...person, ...device }
}

/** The sidebar's rooms the server says the user joined. */
export function joinedRoom(page: Page, slug: string) {
  return page.getByTestId('joined-rooms').locator(`[data-room="${slug}"]`)
}

/** Opens the room directory and searches it for `text`; returns the dialog. */
export async function browseRooms(page: Page, text: string) {
  await page.getByRole('button', { name: 'Browse rooms' }).click()
  const dialog = page.getByRole('dialog', { name: 'Browse rooms' })
  await dialog.getByRole('searchbox', { name: 'Search rooms' }).fill(text)
  return dialog
}

/** A room the directory lists, found by searching for its slug. */
export async function directoryRoom(page: Page, slug: string) {
  const dialog = await browseRooms(page, slug)
  return dialog.getByTestId('room-directory').locator(`[data-room="${slug}"]`)
}

export function messageList(page: Page) {
  return page.getByTestId('messages')
}

/** Messages shown in the list whose text is exactly `body`. */
export function messagesWithBody(page: Page, body: string) {
  return messageList(page).locator('.message .body').filter({ hasText: new RegExp(`^${escape(body)}$`) })
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

export async function createRoom(page: Page, title: string, slug: string, isPrivate = false) {
  await page.getByRole('button', { name: 'New room' }).click()
  const dialog = page.getByRole('dialog', { name: 'New room' })
  await dialog.getByLabel('Title').fill(title)
  await dialog.getByLabel('Address').fill(slug)
  if (isPrivate) await dialog.getByRole('radio', { name: /Private/ }).check()
  await dialog.getByRole('button', { name: 'New room' }).click()
  await expect(page).toHaveURL(new RegExp(`/r/${slug}$`))
  await expect(page.getByTestId('room-title')).toHaveText(title)
}

/**
 * Opens a room from the sidebar if the user joined it, else finds it in the room directory
 * and joins it there (the start page is loaded first, so new rooms show up).
 */
export async function openRoom(page: Page, slug: string) {
  await page.goto('/')
  await expect(joinedRoom(page, 'lobby')).toBeVisible() // the sidebar has loaded
  if ((await joinedRoom(page, slug).count()) > 0) {
    await joinedRoom(page, slug).click()
  } else {
    await (await directoryRoom(page, slug)).getByRole('button', { name: /^Join / }).click()
  }
  await expect(page).toHaveURL(new RegExp(`/r/${slug}$`))
}

/** Sends a message and waits until the server took it: shown once, and no longer ours to
 * send (a refused one, e.g. rate limited, stays in the list as failed: that is not sent). */
export async function send(page: Page, body: string) {
  const composer = page.getByTestId('composer')
  await composer.fill(body)
  await composer.press('Enter')
  await expect(messagesWithBody(page, body)).toHaveCount(1)
  await expect(page.locator('.message:not([data-status="sent"])')).toHaveCount(0)
}

export async function setTheme(page: Page, theme: 'light' | 'dark') {
  const current = await page.locator('html').getAttribute('data-theme')
  if (current !== theme) await page.getByTestId('theme').first().click()
  await expect(page.locator('html')).toHaveAttribute('data-theme', theme)
}

export async function screenshot(page: Page, name: string) {
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, animations: 'disabled' })
}
