import { beforeEach, describe, expect, it, vi } from 'vitest'

import { ApiError, api } from '@/api/http'
import type { ClientFrame } from '@/api/types'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { useRoomsStore } from '@/stores/rooms'

import { alice, message, signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return { ...original, api: { latestMessages: vi.fn(), rooms: vi.fn() } }
})

let sent: ClientFrame[]

beforeEach(() => {
  localStorage.clear()
  signedIn(alice)
  sent = []
  useConnectionStore().bindTransport((frame) => sent.push(frame) > 0)
  vi.mocked(api.latestMessages).mockReset()
})

describe('rooms store', () => {
  it('joins a room once, subscribes to it and remembers it for this user', async () => {
    vi.mocked(api.latestMessages).mockResolvedValue({ messages: [message('1-0')], has_more: false })
    const rooms = useRoomsStore()
    await rooms.open('lobby')
    await rooms.open('lobby')

    expect(sent).toEqual([{ type: 'subscribe', room: 'lobby' }])
    expect(rooms.joined).toEqual(['lobby'])
    expect(JSON.parse(localStorage.getItem('chatroom.joined.alice')!)).toEqual(['lobby'])
  })

  it('restores the joined rooms of the signed-in user', () => {
    localStorage.setItem('chatroom.joined.alice', JSON.stringify(['dev', 'lobby']))
    expect(useRoomsStore().joined).toEqual(['dev', 'lobby'])
  })

  it('leaves a room it cannot see (unknown, or private and not a member)', async () => {
    vi.mocked(api.latestMessages).mockRejectedValue(new ApiError(404, 'room_not_found', 'no'))
    const rooms = useRoomsStore()
    await rooms.open('secret')

    expect(rooms.activeMissing).toBe(true)
    expect(rooms.joined).toEqual([])
    expect(sent).toEqual([{ type: 'subscribe', room: 'secret' }])
  })

  it('drops joined rooms that are no longer in the room list', async () => {
    localStorage.setItem('chatroom.joined.alice', JSON.stringify(['lobby', 'gone']))
    vi.mocked(api.rooms).mockResolvedValue({
      rooms: [{ slug: 'lobby', title: 'Lobby', private: false, online: 1 }],
    })
    const rooms = useRoomsStore()
    await rooms.load()
    expect(rooms.joined).toEqual(['lobby'])
    expect(rooms.sortedRooms.map((room) => room.slug)).toEqual(['lobby'])
  })

  it('forgets the history of a room it leaves', async () => {
    vi.mocked(api.latestMessages).mockResolvedValue({ messages: [message('1-0')], has_more: false })
    const rooms = useRoomsStore()
    const messages = useMessagesStore()
    await rooms.open('lobby')
    rooms.leave('lobby')
    expect(messages.timelines.lobby).toBeUndefined()
  })
})
