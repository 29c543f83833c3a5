import { defineConfig } from '@playwright/test'

/**
 * End-to-end tests against a running Chatroom server (see e2e/run.sh). Playwright's own
 * browser builds are never downloaded: Debian's Chromium runs the tests.
 */
export default defineConfig({
  testDir: './e2e',
  outputDir: './test-results',
  timeout: 90_000,
  expect: { timeout: 15_000 },
  workers: 1,
  reporter: [['list']],
  use: {
    baseURL: process.env.CHATROOM_E2E_URL ?? 'http://127.0.0.1:8765',
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHATROOM_E2E_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
})
