import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { api } from '@/api/http'
import {
  CLOSE_BANNED,
  CLOSE_SIGNED_OUT,
  PING_INTERVAL_MS,
  useChatSocket,
} from '@/composables/useChatSocket'
import { useModerationStore } from '@/stores/moderation'
import { useConnectionStore } from '@/stores/connection'
import { ACK_TIMEOUT_MS, useMessagesStore } from '@/stores/messages'
import { usePresenceStore } from '@/stores/presence'
import { useRoomsStore } from '@/stores/rooms'
import { useSessionStore } from '@/stores/session'

import { FakeSocket, alice, bob, message, signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return {
    ...original,
    api: {
      rooms: vi.fn(),
      latestMessages: vi.fn(async () => ({ messages: [], has_more: false })),
      messagesBefore: vi.fn(async () => ({ messages: [], has_more: false })),
    },
  }
})

/** GET /api/rooms: lobby and dev, with the ones in `joined` joined (on any device). */
function serverSays(joined: string[]) {
  vi.mocked(api.rooms).mockResolvedValue({
    rooms: ['lobby', 'dev'].map((slug) => ({
      slug,
      title: slug,
      private: false,
      online: 0,
      joined: joined.includes(slug),
    })),
  })
}

/** Signed in, the room list loaded (the server says `joined`), the socket started. */
async function setup(joined: string[] = ['lobby']) {
  signedIn(alice)
  serverSays(joined)
  const rooms = useRoomsStore()
  await rooms.load()
  const events = new EventTarget()
  const socket = useChatSocket({
    url: 'ws://chat.test/ws',
    socketClass: FakeSocket,
    random: () => 0.5,
    events: events as unknown as Window,
  })
  socket.start()
  return {
    socket,
    events,
    rooms,
    connection: useConnectionStore(),
    messages: useMessagesStore(),
    presence: usePresenceStore(),
  }
}

beforeEach(() => {
  FakeSocket.instances = []
  vi.useFakeTimers()
  localStorage.clear()
  sessionStorage.clear()
})

afterEach(() => {
  vi.useRealTimers()
  vi.clearAllMocks()
})

describe('useChatSocket', () => {
  it('connects, goes live and subscribes every joined room', async () => {
    const { connection } = await setup(['lobby', 'dev'])
    expect(FakeSocket.last.url).toBe('ws://chat.test/ws')
    expect(connection.state).toBe('connecting')

    FakeSocket.last.open()

    expect(connection.state).toBe('live')
    expect(FakeSocket.last.sentOfType('subscribe')).toEqual([
      { type: 'subscribe', room: 'lobby' },
      { type: 'subscribe', room: 'dev' },
    ])
    // The room list is fetched again on every (re)connect.
    expect(api.rooms).toHaveBeenCalledTimes(2)
  })

  it('subscribes the rooms joined on another device when the list comes in after a connect', async () => {
    const { rooms } = await setup([])
    serverSays(['lobby', 'dev'])
    const socket = FakeSocket.last
    socket.open()
    expect(socket.sentOfType('subscribe')).toEqual([])

    await vi.advanceTimersByTimeAsync(0) // the room list request resolves
    expect(socket.sentOfType('subscribe')).toEqual([
      { type: 'subscribe', room: 'lobby' },
      { type: 'subscribe', room: 'dev' },
    ])
    expect(rooms.joined).toEqual(['lobby', 'dev'])
  })

  it('reconnects with exponential backoff, capped at 15 s', async () => {
    const { connection } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.drop()
    expect(connection.state).toBe('reconnecting')

    // random() = 0.5 means no jitter: 0.5 s, 1 s, 2 s, 4 s, 8 s, 15 s, 15 s.
    const expected = [500, 1000, 2000, 4000, 8000, 15_000, 15_000]
    for (const delay of expected) {
      const count = FakeSocket.instances.length
      vi.advanceTimersByTime(delay - 1)
      expect(FakeSocket.instances).toHaveLength(count)
      vi.advanceTimersByTime(1)
      expect(FakeSocket.instances).toHaveLength(count + 1)
      expect(connection.state).toBe('reconnecting')
      FakeSocket.last.drop()
    }
  })

  it('signs the tab out, without reconnecting, when the server says the session ended', async () => {
    const { connection } = await setup()
    const ended = vi.spyOn(useSessionStore(), 'sessionEnded').mockImplementation(() => {})
    FakeSocket.last.open()
    const count = FakeSocket.instances.length
    FakeSocket.last.drop(CLOSE_SIGNED_OUT)

    expect(ended).toHaveBeenCalledOnce()
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.instances).toHaveLength(count)
    expect(connection.state).toBe('idle')
  })

  it('signs a banned user out, saying so, without reconnecting', async () => {
    const { connection } = await setup()
    const ended = vi.spyOn(useSessionStore(), 'sessionEnded').mockImplementation(() => {})
    FakeSocket.last.open()
    const count = FakeSocket.instances.length
    FakeSocket.last.drop(CLOSE_BANNED)

    expect(ended).toHaveBeenCalledWith('banned')
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.instances).toHaveLength(count)
    expect(connection.state).toBe('idle')
  })

  it('knows when this user is muted in a room, and when it ends', async () => {
    await setup()
    const moderation = useModerationStore()
    FakeSocket.last.open()
    const until = new Date(Date.now() + 60_000).toISOString()
    FakeSocket.last.receive({ type: 'muted', room: 'lobby', until })
    expect(moderation.mutedUntil).toEqual({ lobby: until })
    FakeSocket.last.receive({ type: 'muted', room: 'lobby', until: null })
    expect(moderation.mutedUntil).toEqual({})
    // A send refused says it too; the mute lifts itself when its time is over.
    FakeSocket.last.receive({
      type: 'error',
      code: 'muted',
      message: 'you are muted',
      room: 'lobby',
      until,
      client_id: 'c1',
    })
    expect(moderation.mutedUntil).toEqual({ lobby: until })
    vi.advanceTimersByTime(60_001)
    expect(moderation.mutedUntil).toEqual({})
  })

  it('starts the backoff again after a successful reconnect', async () => {
    await setup()
    FakeSocket.last.drop()
    vi.advanceTimersByTime(500)
    FakeSocket.last.drop()
    vi.advanceTimersByTime(1000)
    FakeSocket.last.open()
    FakeSocket.last.drop()

    const count = FakeSocket.instances.length
    vi.advanceTimersByTime(500)
    expect(FakeSocket.instances).toHaveLength(count + 1)
  })

  it('subscribes again with since = the last id seen, and merges without duplicates', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '0-0', online: [] })
    FakeSocket.last.receive({ type: 'message', ...message('1000-0') })
    FakeSocket.last.receive({ type: 'message', ...message('1000-1') })

    FakeSocket.last.drop()
    vi.advanceTimersByTime(500)
    FakeSocket.last.open()

    expect(FakeSocket.last.sentOfType('subscribe')).toEqual([
      { type: 'subscribe', room: 'lobby', since: '1000-1' },
    ])

    // The server replays from `since`; a message that raced the drop arrives twice.
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '2000-0', online: [] })
    FakeSocket.last.receive({ type: 'message', ...message('1000-1') })
    FakeSocket.last.receive({ type: 'message', ...message('2000-0') })
    FakeSocket.last.receive({ type: 'message', ...message('2000-0') })

    expect(messages.timeline('lobby').messages.map((m) => m.id)).toEqual([
      '1000-0',
      '1000-1',
      '2000-0',
    ])
  })

  it('resumes from the last id received in order, not from an ack that overtook others', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '5-0', online: [] })
    FakeSocket.last.receive({ type: 'message', ...message('6-0', bob) })
    expect(messages.send('lobby', 'hello')).toBe(true)
    const clientId = FakeSocket.last.sentOfType('send')[0]!.client_id as string
    // Our message is acknowledged as 9-0 before bob's 7-0 and 8-0 have reached us.
    FakeSocket.last.receive({ type: 'ack', client_id: clientId, id: '9-0' })
    expect(messages.timeline('lobby').messages.map((m) => m.id)).toEqual(['6-0', '9-0'])

    FakeSocket.last.drop()
    vi.advanceTimersByTime(500)
    FakeSocket.last.open()

    expect(FakeSocket.last.sentOfType('subscribe')).toEqual([
      { type: 'subscribe', room: 'lobby', since: '6-0' },
    ])
    // The replay brings what the ack overtook, and our own message once.
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '9-0', online: [] })
    for (const id of ['7-0', '8-0']) FakeSocket.last.receive({ type: 'message', ...message(id, bob) })
    FakeSocket.last.receive({ type: 'message', ...message('9-0', alice) })
    expect(messages.timeline('lobby').messages.map((m) => m.id)).toEqual([
      '6-0',
      '7-0',
      '8-0',
      '9-0',
    ])
  })

  it('keeps the resume point of a replay that a drop cut short', async () => {
    await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '1-0', online: [] })
    FakeSocket.last.receive({ type: 'message', ...message('2-0', bob) })
    FakeSocket.last.drop()
    vi.advanceTimersByTime(500)
    FakeSocket.last.open()
    // Resumed: the server answers with its newest id, then replays; the drop comes first.
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '9-0', online: [] })
    FakeSocket.last.receive({ type: 'message', ...message('3-0', bob) })
    FakeSocket.last.drop()
    vi.advanceTimersByTime(5000)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('subscribe')).toEqual([
      { type: 'subscribe', room: 'lobby', since: '3-0' },
    ])
  })

  it('starts a room afresh on resync: a new subscription without since', async () => {
    await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '1-0', online: [] })
    FakeSocket.last.receive({ type: 'message', ...message('2-0', bob) })
    const socket = FakeSocket.last
    socket.receive({ type: 'resync', room: 'lobby' })
    expect(socket.sentOfType('subscribe')).toEqual([
      { type: 'subscribe', room: 'lobby' },
      { type: 'subscribe', room: 'lobby' },
    ])
    // Its `subscribed` sets the resume point again.
    socket.receive({ type: 'subscribed', room: 'lobby', last_id: '4-0', online: [] })
    socket.drop()
    vi.advanceTimersByTime(500)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('subscribe')).toEqual([
      { type: 'subscribe', room: 'lobby', since: '4-0' },
    ])
  })

  it('loads history over HTTP after subscribing to a room it has not loaded', async () => {
    vi.mocked(api.latestMessages).mockResolvedValueOnce({
      messages: [message('5-0'), message('6-0')],
      has_more: true,
    })
    const { messages } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: '6-0', online: [bob] })
    FakeSocket.last.receive({ type: 'message', ...message('7-0') })
    await vi.runAllTimersAsync()

    expect(api.latestMessages).toHaveBeenCalledWith('lobby', 50)
    const lobby = messages.timeline('lobby')
    expect(lobby.messages.map((m) => m.id)).toEqual(['5-0', '6-0', '7-0'])
    expect(lobby.hasOlder).toBe(true)
  })

  it('shows a sent message as pending until its ack, then as sent', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()

    expect(messages.send('lobby', '  hello  ')).toBe(true)
    const [send] = FakeSocket.last.sentOfType('send')
    expect(send).toMatchObject({ type: 'send', room: 'lobby', body: 'hello' })
    const clientId = send!.client_id as string
    expect(messages.outbox).toMatchObject([{ clientId, status: 'pending' }])

    FakeSocket.last.receive({ type: 'ack', client_id: clientId, id: '3000-0' })
    expect(messages.outbox).toEqual([])
    expect(messages.timeline('lobby').messages).toMatchObject([
      { id: '3000-0', body: 'hello', user: alice, client_id: clientId },
    ])

    // The fan-out copy of our own message follows the ack: still one message.
    FakeSocket.last.receive({
      type: 'message',
      ...message('3000-0', alice, 'lobby', 'hello'),
      client_id: clientId,
    })
    expect(messages.timeline('lobby').messages).toHaveLength(1)
  })

  it('marks a send failed on an error frame, and retries it with the same client_id', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    messages.send('lobby', 'hello')
    const clientId = FakeSocket.last.sentOfType('send')[0]!.client_id as string

    FakeSocket.last.receive({
      type: 'error',
      code: 'rate_limited',
      message: 'slow down',
      client_id: clientId,
      retry_after_ms: 1200,
    })
    expect(messages.outbox).toMatchObject([
      { clientId, status: 'failed', error: 'rate_limited', retryAfterMs: 1200 },
    ])

    messages.retry(clientId)
    expect(messages.outbox[0]!.status).toBe('pending')
    const sends = FakeSocket.last.sentOfType('send')
    expect(sends).toHaveLength(2)
    expect(sends[1]).toEqual(sends[0])

    FakeSocket.last.receive({ type: 'ack', client_id: clientId, id: '4000-0' })
    expect(messages.outbox).toEqual([])
  })

  it('takes a missing ack for a dead socket once: reconnects and resends, then fails', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    const first = FakeSocket.last
    messages.send('lobby', 'hello')
    const [sent] = first.sentOfType('send')

    vi.advanceTimersByTime(ACK_TIMEOUT_MS - 1)
    expect(messages.outbox[0]!.status).toBe('pending')
    vi.advanceTimersByTime(1)
    // The silent socket is dropped at once, and a new one carries the same send.
    expect(messages.outbox[0]!.status).toBe('queued')
    expect(FakeSocket.last).not.toBe(first)
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('send')).toEqual([sent])

    vi.advanceTimersByTime(ACK_TIMEOUT_MS)
    expect(messages.outbox[0]).toMatchObject({ status: 'failed', error: 'timeout' })
  })

  it('sends pending messages again after a reconnect, with the same client_id', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.drop()
    messages.send('lobby', 'written while offline')
    vi.advanceTimersByTime(500)
    FakeSocket.last.open()

    const [send] = FakeSocket.last.sentOfType('send')
    expect(send).toMatchObject({ body: 'written while offline', client_id: messages.outbox[0]!.clientId })
    // Subscriptions go first, so the ack and the message frame find the room subscribed.
    expect(FakeSocket.last.sent.map((frame) => frame.type)).toEqual(['subscribe', 'send'])
  })

  it('queues a send whose ack the drop swallowed, instead of failing it, and resends it', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    messages.send('lobby', 'in flight')
    const first = FakeSocket.last.sentOfType('send')[0]!
    FakeSocket.last.drop()
    expect(messages.outbox[0]!.status).toBe('queued')

    vi.advanceTimersByTime(ACK_TIMEOUT_MS * 3) // no "No answer from the server" while offline
    expect(messages.outbox[0]!.status).toBe('queued')

    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('send')).toEqual([first])
    expect(messages.outbox[0]!.status).toBe('pending')
  })

  it('sends the offline queue in the order it was written, across rooms', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.drop()
    messages.send('lobby', 'one')
    messages.send('dev', 'two')
    messages.send('lobby', 'three')
    expect(messages.queuedCount).toBe(3)
    vi.advanceTimersByTime(500)
    FakeSocket.last.open()

    expect(FakeSocket.last.sentOfType('send').map((frame) => frame.body)).toEqual(['one', 'two', 'three'])
    expect(messages.queuedCount).toBe(0)
  })

  it('keeps the queue across a reload of the tab and sends it with the same client_id', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.drop()
    messages.send('lobby', 'before the reload')
    const clientId = messages.outbox[0]!.clientId

    // A reload: a fresh Pinia (setup signs in on one), the same sessionStorage.
    const again = await setup()
    expect(again.messages.outbox).toMatchObject([{ clientId, body: 'before the reload', status: 'queued' }])
    FakeSocket.last.open()
    expect(FakeSocket.last.sentOfType('send')).toMatchObject([{ client_id: clientId, body: 'before the reload' }])
  })

  it('marks online lists unknown while the socket is down, and fresh again on subscribed', async () => {
    const { presence } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: null, online: [bob] })
    expect(presence.known('lobby')).toBe(true)
    FakeSocket.last.drop()
    expect(presence.known('lobby')).toBe(false)
    vi.advanceTimersByTime(500)
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: null, online: [] })
    expect(presence.known('lobby')).toBe(true)
    expect(presence.online.lobby).toEqual([])
  })

  it('pings every 25 s and reconnects when a pong does not come back', async () => {
    const { connection } = await setup()
    FakeSocket.last.open()
    const first = FakeSocket.last

    vi.advanceTimersByTime(PING_INTERVAL_MS)
    expect(first.sentOfType('ping')).toHaveLength(1)
    first.receive({ type: 'pong' })
    vi.advanceTimersByTime(PING_INTERVAL_MS)
    expect(first.sentOfType('ping')).toHaveLength(2)

    // No pong this time: at the next tick the connection is given up.
    vi.advanceTimersByTime(PING_INTERVAL_MS)
    expect(first.closedWith).toBe(4000)
    expect(connection.state).toBe('reconnecting')
    vi.advanceTimersByTime(500)
    expect(FakeSocket.last).not.toBe(first)
  })

  it('drops the socket when the browser goes offline and reconnects at once when back', async () => {
    const { events, connection } = await setup()
    FakeSocket.last.open()
    const first = FakeSocket.last

    events.dispatchEvent(new Event('offline'))
    expect(first.closedWith).not.toBeNull()
    expect(connection.state).toBe('reconnecting')
    vi.advanceTimersByTime(500)
    FakeSocket.last.drop()

    const count = FakeSocket.instances.length
    events.dispatchEvent(new Event('online'))
    expect(FakeSocket.instances).toHaveLength(count + 1)
  })

  it('routes presence and typing frames to the presence store', async () => {
    const { presence } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'subscribed', room: 'lobby', last_id: null, online: [alice] })
    FakeSocket.last.receive({ type: 'presence', room: 'lobby', user: bob, state: 'join' })
    FakeSocket.last.receive({ type: 'typing', room: 'lobby', user: bob })

    expect(presence.online.lobby).toEqual([alice, bob])
    expect(presence.typing.lobby).toEqual([bob])

    FakeSocket.last.receive({ type: 'message', ...message('9-0', bob) })
    expect(presence.typing.lobby).toEqual([])

    FakeSocket.last.receive({ type: 'presence', room: 'lobby', user: bob, state: 'leave' })
    expect(presence.online.lobby).toEqual([alice])
  })

  it('reloads the history over HTTP on resync', async () => {
    const { messages } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'message', ...message('1-0') })
    vi.mocked(api.latestMessages).mockResolvedValueOnce({
      messages: [message('8-0')],
      has_more: false,
    })

    FakeSocket.last.receive({ type: 'resync', room: 'lobby' })
    await vi.runAllTimersAsync()

    expect(messages.timeline('lobby').messages.map((m) => m.id)).toEqual(['8-0'])
  })

  it('shows an error frame without a client_id as a notice', async () => {
    const { connection } = await setup()
    FakeSocket.last.open()
    FakeSocket.last.receive({ type: 'error', code: 'room_not_found', message: 'no such room' })
    expect(connection.notice).toBeNull()
    FakeSocket.last.receive({ type: 'error', code: 'invalid_json', message: 'not JSON' })
    expect(connection.notice).toEqual({
      code: 'invalid_json',
      message: 'not JSON',
      retryAfterMs: null,
    })
  })

  it('closes cleanly on stop and does not reconnect', async () => {
    const { socket, connection } = await setup()
    FakeSocket.last.open()
    socket.stop()

    expect(FakeSocket.last.closedWith).toBe(1000)
    expect(connection.state).toBe('idle')
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.instances).toHaveLength(1)
  })
})
