import { expect, test } from '@playwright/test'

import { createRoom, messageList, messagesWithBody, openRoom, screenshot, signUp, unique } from './helpers'

// A message sent as the network went, with no ack, while the tab slept longer than the
// server remembers client_ids (a day): the page does not send it again on its own. It asks,
// unless the room shows it got there.
test('a message unanswered for longer than the server remembers asks before it goes again', async ({
  browser,
}) => {
  const alice = await signUp(browser, 'rwa_', 'Alice')
  const bob = await signUp(browser, 'rwb_', 'Bob')
  const room = unique('rw-')
  await createRoom(alice.page, 'Resend window', room)
  await openRoom(bob.page, room)

  // What Alice's socket loses: her sends of `lostOnTheWay` on the way out; her acks and her
  // own copies of `lostOnTheWay` and `ackLost` on the way back. History (HTTP) is untouched.
  const ackLost = 'stored, but its ack was lost'
  const lostOnTheWay = 'never reached the server'
  let losing = true
  await alice.page.routeWebSocket(/\/ws$/, (page) => {
    const server = page.connectToServer()
    page.onMessage((frame) => {
      if (!losing || !String(frame).includes(lostOnTheWay)) server.send(frame)
    })
    server.onMessage((frame) => {
      const text = String(frame)
      const lost = [ackLost, lostOnTheWay].some((body) => text.includes(body))
      if (!losing || (!lost && !text.includes('"type":"ack"'))) page.send(frame)
    })
  })
  await alice.page.clock.install()
  await alice.page.reload()
  await expect(alice.page.getByRole('status').getByText('Live')).toBeVisible()

  const composer = alice.page.getByTestId('composer')
  for (const body of [ackLost, lostOnTheWay]) {
    await composer.fill(body)
    await composer.press('Enter')
  }
  await expect(messagesWithBody(bob.page, ackLost)).toHaveCount(1)
  await expect(messageList(alice.page).getByText('Sending…')).toHaveCount(2)

  // The lid closes for 25 hours: both are unanswered, neither goes again by itself.
  await alice.page.clock.fastForward(25 * 3600 * 1000)
  const questions = messageList(alice.page).getByRole('alert')
  await expect(questions).toHaveCount(2)
  await expect(questions.first()).toContainText('Not confirmed')
  await expect(questions.first()).toContainText('it may have arrived')
  await screenshot(alice.page, 'resend-window-light')

  // A reload: history shows the first got there (no question left); the second still asks.
  await alice.page.reload()
  await expect(alice.page.getByRole('status').getByText('Live')).toBeVisible()
  await expect(messagesWithBody(alice.page, ackLost)).toHaveCount(1)
  await expect(questions).toHaveCount(1)
  await expect(questions).toContainText('Not confirmed')
  await expect(messagesWithBody(bob.page, lostOnTheWay)).toHaveCount(0)

  // The network is good again, and Alice decides: it goes, once.
  losing = false
  await questions.getByRole('button', { name: 'Retry' }).click()
  await expect(questions).toHaveCount(0)
  await expect(messagesWithBody(bob.page, lostOnTheWay)).toHaveCount(1)
  await expect(messagesWithBody(alice.page, lostOnTheWay)).toHaveCount(1)
  await expect(messagesWithBody(bob.page, ackLost)).toHaveCount(1)
  await alice.context.close()
  await bob.context.close()
})
