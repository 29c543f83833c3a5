import { beforeEach, describe, expect, it, vi } from 'vitest'

import { ApiError, api } from '@/api/http'
import type { ClientFrame, Room } from '@/api/types'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { useRoomsStore } from '@/stores/rooms'

import { alice, message, signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return {
    ...original,
    api: {
      latestMessages: vi.fn(),
      rooms: vi.fn(),
      room: vi.fn(),
      joinRoom: vi.fn(),
      leaveRoom: vi.fn(),
    },
  }
})

function room(slug: string, joined: boolean, extra: Partial<Room> = {}): Room {
  return { slug, title: slug.toUpperCase(), private: false, online: 0, joined, ...extra }
}

/** What GET /api/rooms answers: the server's membership, the same on every device. */
function serverSays(...rooms: Room[]) {
  vi.mocked(api.rooms).mockResolvedValue({ rooms })
}

let sent: ClientFrame[]

beforeEach(() => {
  localStorage.clear()
  signedIn(alice)
  sent = []
  useConnectionStore().bindTransport((frame) => sent.push(frame) > 0)
  vi.mocked(api.latestMessages).mockReset()
  vi.mocked(api.latestMessages).mockResolvedValue({ messages: [message('1-0')], has_more: false })
  vi.mocked(api.rooms).mockReset()
  vi.mocked(api.room).mockReset()
  vi.mocked(api.joinRoom).mockReset()
  vi.mocked(api.joinRoom).mockResolvedValue(undefined)
  vi.mocked(api.leaveRoom).mockReset()
  vi.mocked(api.leaveRoom).mockResolvedValue(undefined)
})

describe('rooms store', () => {
  it('loads every page of the rooms we joined, and only those', async () => {
    vi.mocked(api.rooms)
      .mockResolvedValueOnce({ rooms: [room('alpha', true), room('beta', true)], next_cursor: 'beta' })
      .mockResolvedValueOnce({ rooms: [room('lobby', true)], next_cursor: null })
    const rooms = useRoomsStore()
    await rooms.load()

    expect(vi.mocked(api.rooms).mock.calls).toEqual([
      [{ joined: true, cursor: null, limit: 200 }],
      [{ joined: true, cursor: 'beta', limit: 200 }],
    ])
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['alpha', 'beta', 'lobby'])
  })

  it('subscribes again after the wait when the server refused a subscribe for now', async () => {
    vi.useFakeTimers()
    try {
      serverSays(room('lobby', true))
      const rooms = useRoomsStore()
      await rooms.load()
      sent = []
      rooms.subscribeLater('lobby', 1500)
      vi.advanceTimersByTime(1400)
      expect(sent).toEqual([])
      vi.advanceTimersByTime(200)
      expect(sent).toEqual([{ type: 'subscribe', room: 'lobby' }])
    } finally {
      vi.useRealTimers()
    }
  })

  it('lists the rooms the server says we joined, subscribes them, and stores nothing locally', async () => {
    serverSays(room('lobby', true), room('dev', true), room('random', false))
    const rooms = useRoomsStore()
    await rooms.load()

    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['dev', 'lobby'])
    expect(sent).toEqual([
      { type: 'subscribe', room: 'lobby' },
      { type: 'subscribe', room: 'dev' },
    ])
    expect(rooms.subscriptions()).toEqual(['lobby', 'dev'])
    expect(localStorage.length).toBe(0)
  })

  it('joins a room on the server when it is opened, once, and subscribes to it once', async () => {
    serverSays(room('lobby', true), room('random', false))
    const rooms = useRoomsStore()
    await rooms.load()
    sent = []

    await rooms.open('random')
    await rooms.open('random')

    expect(api.joinRoom).toHaveBeenCalledTimes(1)
    expect(api.joinRoom).toHaveBeenCalledWith('random')
    expect(sent).toEqual([{ type: 'subscribe', room: 'random' }])
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['lobby', 'random'])
  })

  it('does not join again a room the server says we joined', async () => {
    serverSays(room('lobby', true))
    const rooms = useRoomsStore()
    await rooms.load()
    await rooms.open('lobby')
    expect(api.joinRoom).not.toHaveBeenCalled()
    expect(sent).toEqual([{ type: 'subscribe', room: 'lobby' }])
  })

  it('fetches a room it joined that the list did not have yet (opened from a link)', async () => {
    vi.mocked(api.room).mockResolvedValue({ room: room('fresh', true) })
    const rooms = useRoomsStore()
    await rooms.open('fresh')

    expect(api.joinRoom).toHaveBeenCalledWith('fresh')
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['fresh'])
    expect(rooms.activeMissing).toBe(false)
  })

  it('shows a room it cannot see (unknown, or private and not a member) as missing', async () => {
    vi.mocked(api.joinRoom).mockRejectedValue(new ApiError(404, 'room_not_found', 'no'))
    const rooms = useRoomsStore()
    await rooms.open('secret')

    expect(rooms.activeMissing).toBe(true)
    expect(rooms.joined).toEqual([])
    expect(rooms.subscriptions()).toEqual([])
    expect(sent).toEqual([{ type: 'subscribe', room: 'secret' }])
  })

  it('unsubscribes and forgets a room, then leaves it on the server', async () => {
    serverSays(room('lobby', true), room('dev', true))
    const rooms = useRoomsStore()
    const messages = useMessagesStore()
    await rooms.load()
    await rooms.open('lobby')
    await rooms.open(null) // Leave closes the room first
    sent = []
    vi.mocked(api.leaveRoom).mockImplementation(async () => {
      // The server ends no subscription of ours (no `forbidden` frame): there is none left.
      expect(sent).toEqual([{ type: 'unsubscribe', room: 'lobby' }])
    })

    await rooms.leave('lobby')
    expect(api.leaveRoom).toHaveBeenCalledWith('lobby')
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['dev'])
    // Gone from the sidebar (the directory has it, to join again).
    expect(rooms.rooms.map((r) => r.slug)).toEqual(['dev'])
    expect(messages.timelines.lobby).toBeUndefined()
    expect(rooms.subscriptions()).toEqual(['dev'])
    expect(sent).toEqual([{ type: 'unsubscribe', room: 'lobby' }])
  })

  it('drops a private room it left from the list (leaving ended its access)', async () => {
    serverSays(room('lobby', true), room('plans', true, { private: true }))
    const rooms = useRoomsStore()
    await rooms.load()
    sent = []
    await rooms.leave('plans')
    expect(rooms.rooms.map((r) => r.slug)).toEqual(['lobby'])
    expect(sent).toEqual([{ type: 'unsubscribe', room: 'plans' }])
  })

  it('keeps a room the server refused to let us leave (its owner)', async () => {
    serverSays(room('plans', true, { private: true, owned: true }))
    vi.mocked(api.leaveRoom).mockRejectedValue(new ApiError(409, 'owner_cannot_leave', 'no'))
    const rooms = useRoomsStore()
    await rooms.load()
    sent = []
    await expect(rooms.leave('plans')).rejects.toMatchObject({ code: 'owner_cannot_leave' })
    expect(rooms.joined).toEqual(['plans'])
    // Still a member: subscribed again.
    expect(sent).toEqual([
      { type: 'unsubscribe', room: 'plans' },
      { type: 'subscribe', room: 'plans' },
    ])
    expect(rooms.subscriptions()).toEqual(['plans'])
  })

  it('follows what another device did: rooms left there are dropped at the next load', async () => {
    serverSays(room('lobby', true), room('dev', true), room('plans', true, { private: true }))
    const rooms = useRoomsStore()
    const messages = useMessagesStore()
    await rooms.load()
    await messages.loadLatest('dev')
    sent = []

    // Elsewhere: left dev, left the private room plans, joined random.
    serverSays(room('lobby', true), room('dev', false), room('random', true))
    await rooms.load()

    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['lobby', 'random'])
    expect(sent).toEqual([
      { type: 'unsubscribe', room: 'dev' },
      { type: 'subscribe', room: 'random' },
    ])
    expect(messages.timelines.dev).toBeUndefined()
    expect(rooms.subscriptions()).toEqual(['lobby', 'random'])
  })

  it('keeps the room on screen subscribed while it is open, even when left elsewhere', async () => {
    serverSays(room('lobby', true))
    const rooms = useRoomsStore()
    await rooms.load()
    await rooms.open('lobby')
    sent = []

    serverSays(room('lobby', false))
    await rooms.load()
    expect(sent).toEqual([])
    expect(rooms.joinedRooms).toEqual([])

    await rooms.open(null)
    expect(sent).toEqual([{ type: 'unsubscribe', room: 'lobby' }])
  })

  it('follows room frames: added and created show up, removed goes with a notice and closes', async () => {
    serverSays(room('lobby', true))
    const rooms = useRoomsStore()
    await rooms.load()
    rooms.roomEvent('added', room('hideout', true, { private: true }))
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['hideout', 'lobby'])
    expect(sent).toContainEqual({ type: 'subscribe', room: 'hideout' })
    // A new public room is news for the directory, not for the sidebar.
    rooms.roomEvent('created', room('plaza', false))
    expect(rooms.directoryChanged).toBe(1)
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['hideout', 'lobby'])

    await rooms.open('hideout')
    rooms.roomEvent('removed', room('hideout', false, { private: true }))
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['lobby'])
    expect(rooms.closed).toEqual({ slug: 'hideout' })
    expect(useConnectionStore().notice?.code).toBe('removed_from_room')
    // The forbidden that ends its subscription says nothing more.
    useConnectionStore().dismissNotice()
    rooms.removed('hideout')
    expect(useConnectionStore().notice).toBeNull()
  })

  it('lists direct conversations apart, named after the other people', async () => {
    const bob = { id: 2, username: 'bob', display_name: 'Bob' }
    serverSays(
      room('lobby', true),
      room('dm.0123456789abcdef01234567', true, { kind: 'dm', private: true, members: [alice, bob] }),
    )
    const rooms = useRoomsStore()
    await rooms.load()
    expect(rooms.joinedRooms.map((r) => r.slug)).toEqual(['lobby'])
    expect(rooms.conversations.map((r) => rooms.titleOf(r))).toEqual(['Bob'])
  })
})
