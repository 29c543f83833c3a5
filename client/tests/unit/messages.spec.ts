import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { nextTick } from 'vue'

import { ApiError, api } from '@/api/http'
import { useConnectionStore } from '@/stores/connection'
import { useReadsStore } from '@/stores/reads'
import { useMessagesStore } from '@/stores/messages'

import { alice, bob, message, signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return {
    ...original,
    api: { latestMessages: vi.fn(), messagesBefore: vi.fn() },
  }
})

beforeEach(() => {
  signedIn(alice)
})

afterEach(() => {
  vi.clearAllMocks()
})

describe('messages store', () => {
  it('keeps each room in id order, whatever order messages arrive in', () => {
    const messages = useMessagesStore()
    messages.receive(message('1000-1'))
    messages.receive(message('999-0'))
    messages.receive(message('1000-0'))
    messages.receive(message('1000-10'))
    messages.receive(message('1000-2'))

    expect(messages.timeline('lobby').messages.map((m) => m.id)).toEqual([
      '999-0',
      '1000-0',
      '1000-1',
      '1000-2',
      '1000-10',
    ])
  })

  it('loads older pages with before= and keeps has_more', async () => {
    const messages = useMessagesStore()
    vi.mocked(api.latestMessages).mockResolvedValue({
      messages: [message('3-0'), message('4-0')],
      has_more: true,
    })
    vi.mocked(api.messagesBefore).mockResolvedValue({
      messages: [message('1-0'), message('2-0'), message('3-0')],
      has_more: false,
    })

    await messages.loadLatest('lobby')
    await messages.loadOlder('lobby')

    expect(api.messagesBefore).toHaveBeenCalledWith('lobby', '3-0', 50)
    const lobby = messages.timeline('lobby')
    expect(lobby.messages.map((m) => m.id)).toEqual(['1-0', '2-0', '3-0', '4-0'])
    expect(lobby.hasOlder).toBe(false)

    await messages.loadOlder('lobby')
    expect(api.messagesBefore).toHaveBeenCalledTimes(1)
  })

  it('loads the latest page once even when asked twice at the same time', async () => {
    const messages = useMessagesStore()
    vi.mocked(api.latestMessages).mockResolvedValue({ messages: [], has_more: false })
    await Promise.all([messages.loadLatest('lobby'), messages.loadLatest('lobby')])
    expect(api.latestMessages).toHaveBeenCalledTimes(1)
  })

  it('marks an unknown or forbidden room as missing', async () => {
    const messages = useMessagesStore()
    vi.mocked(api.latestMessages).mockRejectedValue(new ApiError(404, 'room_not_found', 'no'))
    await messages.loadLatest('secret')
    expect(messages.timeline('secret').missing).toBe(true)
  })

  it('counts unread messages of others after the read mark the server keeps', async () => {
    const messages = useMessagesStore()
    vi.mocked(api.latestMessages).mockResolvedValue({ messages: [message('1-0')], has_more: false })
    await messages.loadLatest('lobby')
    useReadsStore().fromServer({
      slug: 'lobby',
      title: 'Lobby',
      private: false,
      online: 0,
      joined: true,
      last_read: '1-0',
    })
    expect(messages.unreadCount('lobby')).toBe(0)

    messages.receive(message('2-0', bob))
    messages.receive(message('3-0', alice))
    messages.receive(message('4-0', bob))
    expect(messages.unreadCount('lobby')).toBe(2)

    messages.markRead('lobby')
    expect(messages.unreadCount('lobby')).toBe(0)
  })

  it('refuses a body over the limit the server told us, and takes one at it', () => {
    const messages = useMessagesStore()
    expect(messages.send('lobby', 'x'.repeat(4000))).toBe(true)
    expect(messages.send('lobby', 'x'.repeat(4001))).toBe(false)

    signedIn(alice).messageMaxChars = 5
    const limited = useMessagesStore()
    expect(limited.send('lobby', 'x'.repeat(6))).toBe(false)
    expect(limited.send('lobby', ' 12345 ')).toBe(true)
    expect(limited.outbox.map((entry) => entry.body)).toEqual(['12345'])
  })

  it('queues a message when the socket is down; nothing is lost', () => {
    const messages = useMessagesStore()
    useConnectionStore().bindTransport(() => false)
    expect(messages.send('lobby', 'hello')).toBe(true)
    expect(messages.pendingIn('lobby')).toMatchObject([{ body: 'hello', status: 'queued' }])
    expect(messages.pendingIn('dev')).toEqual([])
  })

  it('settles our own message when its fan-out copy comes before the ack', () => {
    const messages = useMessagesStore()
    messages.send('lobby', 'hello')
    const clientId = messages.outbox[0]!.clientId
    messages.receive({ ...message('5-0', alice, 'lobby', 'hello'), client_id: clientId })
    expect(messages.outbox).toEqual([])
    messages.acknowledge(clientId, '5-0')
    expect(messages.timeline('lobby').messages).toHaveLength(1)
  })

  it('does not settle our message when someone else uses the same client_id', () => {
    const messages = useMessagesStore()
    messages.send('lobby', 'hello')
    const clientId = messages.outbox[0]!.clientId
    messages.receive({ ...message('5-0', bob), client_id: clientId })
    expect(messages.outbox).toHaveLength(1)
  })

  it('gives each message its own client_id', () => {
    const messages = useMessagesStore()
    messages.send('lobby', 'one')
    messages.send('lobby', 'two')
    const [first, second] = messages.outbox
    expect(first!.clientId).not.toBe(second!.clientId)
    expect(first!.clientId).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('sends of unknown outcome', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('go again by themselves, in order, with the same client_id, shown as pending', () => {
    const sent: string[] = []
    const connection = useConnectionStore()
    connection.bindTransport((frame) => {
      if (frame.type === 'send') sent.push(frame.client_id)
      return true
    })
    connection.setState('live') // sent at once, not queued for a socket to come
    const messages = useMessagesStore()
    messages.send('lobby', 'first')
    messages.send('lobby', 'second')
    const [first, second] = messages.outbox.map((entry) => entry.clientId) as [string, string]
    sent.length = 0

    messages.fail(first, 'unknown_outcome')
    messages.fail(second, 'unavailable') // held back behind the first by the server
    expect(messages.outbox.map((entry) => entry.status)).toEqual(['pending', 'pending'])

    vi.advanceTimersByTime(10_000)
    expect(sent).toEqual([first, second])
    messages.acknowledge(first, '7-0')
    messages.acknowledge(second, '8-0')
    expect(messages.outbox).toEqual([])
  })

  it('show as failed after a bounded number of attempts', () => {
    useConnectionStore().bindTransport(() => true)
    const messages = useMessagesStore()
    messages.send('lobby', 'hello')
    const clientId = messages.outbox[0]!.clientId
    for (let attempt = 0; attempt < 5; attempt += 1) {
      messages.fail(clientId, 'unknown_outcome')
      expect(messages.outbox[0]!.status).toBe('pending')
      vi.advanceTimersByTime(10_000)
    }
    messages.fail(clientId, 'unknown_outcome')
    expect(messages.outbox[0]).toMatchObject({ status: 'failed', error: 'unknown_outcome' })
  })

  it('leave a plain unavailable as failed when nothing of ours waits', () => {
    useConnectionStore().bindTransport(() => true)
    const messages = useMessagesStore()
    messages.send('lobby', 'hello')
    messages.fail(messages.outbox[0]!.clientId, 'unavailable')
    expect(messages.outbox[0]!.status).toBe('failed')
  })
})

describe('a message unanswered for longer than the server remembers its client_id', () => {
  const HOUR_MS = 3_600_000
  let sent: string[]

  /** A fresh page of a signed-in user whose server remembers client_ids for an hour. */
  function livePage() {
    signedIn(alice).resendWindowMs = HOUR_MS
    const connection = useConnectionStore()
    connection.bindTransport((frame) => {
      if (frame.type === 'send') sent.push(frame.client_id)
      return true
    })
    connection.setState('live')
    return useMessagesStore()
  }

  beforeEach(() => {
    vi.useFakeTimers()
    sessionStorage.clear()
    sent = []
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  /** Sent on a live socket that then dropped before the ack: the outcome is unknown. */
  function sentThenDropped(body: string): string {
    const messages = useMessagesStore()
    messages.send('lobby', body)
    const clientId = messages.outbox.at(-1)!.clientId
    useConnectionStore().setState('connecting')
    messages.connectionLost()
    return clientId
  }

  function reconnect() {
    useConnectionStore().setState('live')
    sent.length = 0
    useMessagesStore().resendPending()
  }

  it('goes again by itself after a reconnect within the window', () => {
    const messages = livePage()
    const clientId = sentThenDropped('hello')
    vi.advanceTimersByTime(HOUR_MS - 61_000) // offline for most of the window
    reconnect()
    expect(sent).toEqual([clientId])
    expect(messages.outbox[0]).toMatchObject({ status: 'pending', error: null })
  })

  it('is not resent on its own past the window: it asks, and Retry sends it', () => {
    const messages = livePage()
    const clientId = sentThenDropped('hello')
    messages.send('lobby', 'written offline') // never sent: it goes whenever we are back
    const offline = messages.outbox[1]!.clientId
    vi.advanceTimersByTime(HOUR_MS) // a first copy may be stored, and forgotten by now
    reconnect()

    expect(sent).toEqual([offline])
    expect(messages.outbox[0]).toMatchObject({
      clientId,
      status: 'failed',
      error: 'resend_window_passed',
    })
    messages.retry(clientId) // the user chose to
    expect(sent).toEqual([offline, clientId])
    expect(messages.outbox[0]).toMatchObject({ status: 'pending', error: null })
  })

  it('keeps its first send time across a reload: a reload does not restart the window', async () => {
    livePage().restoreOutbox(alice.id)
    const clientId = sentThenDropped('hello')
    await nextTick() // the outbox is saved to sessionStorage
    vi.advanceTimersByTime(HOUR_MS)

    const reloaded = livePage()
    reloaded.restoreOutbox(alice.id)
    expect(reloaded.outbox.map((entry) => entry.clientId)).toEqual([clientId])
    reconnect()
    expect(sent).toEqual([])
    expect(reloaded.outbox[0]).toMatchObject({ status: 'failed', error: 'resend_window_passed' })
  })

  it('is settled by a history page that holds it: it reached the room after all', async () => {
    livePage().restoreOutbox(alice.id)
    const clientId = sentThenDropped('hello')
    await nextTick()
    vi.advanceTimersByTime(HOUR_MS)

    const reloaded = livePage()
    reloaded.restoreOutbox(alice.id)
    reconnect()
    expect(reloaded.outbox[0]).toMatchObject({ status: 'failed', error: 'resend_window_passed' })
    vi.mocked(api.latestMessages).mockResolvedValue({
      messages: [{ ...message('5-0', alice, 'lobby', 'hello'), client_id: clientId }],
      has_more: false,
    })
    await reloaded.loadLatest('lobby')
    expect(reloaded.outbox).toEqual([])
    expect(reloaded.timeline('lobby').messages.map((m) => m.id)).toEqual(['5-0'])
  })

  it('stops the automatic resends of an unknown outcome at the window', () => {
    const messages = livePage()
    messages.send('lobby', 'hello')
    const clientId = messages.outbox[0]!.clientId
    vi.advanceTimersByTime(HOUR_MS)
    sent.length = 0
    messages.fail(clientId, 'unknown_outcome')
    vi.advanceTimersByTime(30_000)
    expect(sent).toEqual([])
    expect(messages.outbox[0]).toMatchObject({ status: 'failed', error: 'resend_window_passed' })
  })

  it('does not hold back changes: an edit or a reaction applied twice does no harm', () => {
    const messages = livePage()
    messages.toggleReaction(message('5-0', bob), '👍')
    const clientId = messages.outbox[0]!.clientId
    useConnectionStore().setState('connecting')
    messages.connectionLost()
    vi.advanceTimersByTime(2 * HOUR_MS)
    useConnectionStore().setState('live')
    const frames: string[] = []
    useConnectionStore().bindTransport((frame) => {
      if ('client_id' in frame) frames.push(frame.client_id)
      return true
    })
    messages.resendPending()
    expect(frames).toEqual([clientId])
  })
})
