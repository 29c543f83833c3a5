import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { api } from '@/api/http'
import type { ClientFrame, Room } from '@/api/types'
import { mentions } from '@/lib/mentions'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { READ_REPORT_MS, useReadsStore } from '@/stores/reads'

import { alice, bob, message, signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return { ...original, api: { latestMessages: vi.fn(), messagesBefore: vi.fn() } }
})

const lobby = (extra: Partial<Room> = {}): Room => ({
  slug: 'lobby',
  title: 'Lobby',
  private: false,
  online: 0,
  joined: true,
  ...extra,
})

let sent: ClientFrame[]
let open: boolean

beforeEach(() => {
  signedIn(alice)
  vi.useFakeTimers()
  sent = []
  open = true
  useConnectionStore().bindTransport((frame) => {
    if (open) sent.push(frame)
    return open
  })
})

afterEach(() => {
  vi.useRealTimers()
  vi.clearAllMocks()
})

describe('reads store', () => {
  it('counts from the server mark after a reload, and the divider goes above the first unread', async () => {
    vi.mocked(api.latestMessages).mockResolvedValue({
      messages: [message('1-0'), message('2-0'), message('3-0', alice), message('4-0', bob, 'lobby', '@Alice hi')],
      has_more: false,
    })
    const messages = useMessagesStore()
    const reads = useReadsStore()
    await messages.loadLatest('lobby')
    // Loading history reads nothing: the mark is the server's.
    expect(reads.counted('lobby').count).toBe(0)
    reads.fromServer(lobby({ last_read: '1-0', unread: 2, mentions: 1 }))
    expect(reads.counted('lobby')).toEqual({ count: 2, more: false, mentions: 1 })
    expect(reads.firstUnread('lobby')).toBe('2-0')
  })

  it("uses the server's count (99+) while the messages held do not reach the mark", async () => {
    vi.mocked(api.latestMessages).mockResolvedValue({
      messages: [message('500-0'), message('501-0')],
      has_more: true,
    })
    const reads = useReadsStore()
    await useMessagesStore().loadLatest('lobby')
    reads.fromServer(lobby({ last_read: '1-0', unread: 99, unread_more: true, mentions: 0 }))
    expect(reads.counted('lobby')).toEqual({ count: 99, more: true, mentions: 0 })
  })

  it('reports the first mark at once, then the newest at most once a second, and what could not go after a reconnect', () => {
    const reads = useReadsStore()
    reads.markRead('lobby', '5-0')
    expect(sent).toEqual([{ type: 'read', room: 'lobby', id: '5-0' }])
    reads.markRead('lobby', '6-0')
    reads.markRead('lobby', '4-0') // behind: ignored
    expect(sent).toHaveLength(1)
    vi.advanceTimersByTime(READ_REPORT_MS)
    expect(sent.at(-1)).toEqual({ type: 'read', room: 'lobby', id: '6-0' })

    open = false
    reads.markRead('lobby', '7-0')
    vi.advanceTimersByTime(READ_REPORT_MS)
    expect(sent).toHaveLength(2)
    open = true
    reads.report() // the socket's next open
    expect(sent.at(-1)).toEqual({ type: 'read', room: 'lobby', id: '7-0' })
  })

  it('takes marks from other tabs forward only, and never reports them back', () => {
    const reads = useReadsStore()
    reads.synced('lobby', '9-0')
    reads.synced('lobby', '8-0')
    expect(reads.rooms.lobby?.upTo).toBe('9-0')
    vi.advanceTimersByTime(READ_REPORT_MS)
    expect(sent).toEqual([])
  })
})

describe('mentions', () => {
  it('finds @username in any case and @room, not inside words or addresses', () => {
    expect(mentions('@alice look', 'alice')).toBe(true)
    expect(mentions('hey (@ALICE)', 'alice')).toBe(true)
    expect(mentions('@room standup', 'alice')).toBe(true)
    expect(mentions('mail alice@example.org', 'alice')).toBe(false)
    expect(mentions('@alice_b', 'alice')).toBe(false)
    expect(mentions('@@alice', 'alice')).toBe(false)
  })
})
