import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { ApiError, api } from '@/api/http'
import type { SearchHit } from '@/api/types'
import {
  appendResults,
  highlightPieces,
  isSearchShortcut,
  permalinkPath,
  searchable,
  snippet,
} from '@/lib/search'
import { useMessagesStore } from '@/stores/messages'
import { useSearchStore } from '@/stores/search'

import { alice, message, signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return {
    ...original,
    api: {
      latestMessages: vi.fn(),
      messagesBefore: vi.fn(),
      messagesAfter: vi.fn(),
      messagesAround: vi.fn(),
      search: vi.fn(),
    },
  }
})

beforeEach(() => {
  signedIn(alice)
})

afterEach(() => {
  vi.clearAllMocks()
})

const text = (pieces: { text: string; hit: boolean }[]) =>
  pieces.map((piece) => (piece.hit ? `[${piece.text}]` : piece.text)).join('')

function hit(id: string, room = 'lobby'): SearchHit {
  return {
    message: message(id, alice, room),
    room: { slug: room, title: room, private: false, kind: 'room' },
    highlights: [],
  }
}

describe('highlighted pieces of a found message', () => {
  it('marks the ranges the server found, in UTF-16 units, as pieces (no HTML)', () => {
    expect(text(highlightPieces('Deployed to prod', [[0, 8]]))).toBe('[Deployed] to prod')
    // An emoji is two UTF-16 units: the server counts them as String.slice does.
    expect(text(highlightPieces('😀 Café <b>', [[3, 7]]))).toBe('😀 [Café] <b>')
    expect(text(highlightPieces('a b c', [[4, 5], [0, 1]]))).toBe('[a] b [c]')
  })

  it('survives ranges that overlap or fall outside the body', () => {
    expect(text(highlightPieces('hello', [[0, 3], [2, 5], [9, 12], [4, 2]]))).toBe('[hel][lo]')
    expect(highlightPieces('', [[0, 3]])).toEqual([])
  })

  it('shows a long body around its first match, with ellipses, whole surrogate pairs', () => {
    const body = `${'x'.repeat(300)} needle ${'y'.repeat(300)}`
    const shown = text(snippet(body, [[301, 307]], 100))
    expect(shown.startsWith('…')).toBe(true)
    expect(shown.endsWith('…')).toBe(true)
    expect(shown).toContain('[needle]')
    expect(shown.length).toBeLessThanOrEqual(104)
    const emoji = '😀'.repeat(200)
    for (const piece of snippet(emoji, [[200, 202]], 51)) {
      expect(piece.text).not.toMatch(/^[\udc00-\udfff]|[\ud800-\udbff]$/)
    }
    expect(text(snippet('short one', [[0, 5]]))).toBe('[short] one')
  })
})

describe('search helpers', () => {
  it('keeps each result once across pages', () => {
    const held = [hit('1-0'), hit('2-0')]
    const merged = appendResults(held, [hit('2-0'), hit('3-0'), hit('2-0', 'other')])
    expect(merged.map((h) => `${h.room.slug} ${h.message.id}`)).toEqual([
      'lobby 1-0',
      'lobby 2-0',
      'lobby 3-0',
      'other 2-0',
    ])
  })

  it('asks the server only for text with a letter or digit', () => {
    expect(searchable('  ')).toBe(false)
    expect(searchable('+-*"')).toBe(false)
    expect(searchable('你好')).toBe(true)
    expect(searchable('42')).toBe(true)
  })

  it('opens on Ctrl+K or Cmd+K anywhere, and on / outside a text field', () => {
    const key = (k: string, extra: Partial<{ ctrlKey: boolean; metaKey: boolean; altKey: boolean }> = {}, target: EventTarget | null = document.body) => ({
      key: k,
      ctrlKey: false,
      metaKey: false,
      altKey: false,
      target,
      ...extra,
    })
    const field = document.createElement('textarea')
    expect(isSearchShortcut(key('k', { ctrlKey: true }, field))).toBe(true)
    expect(isSearchShortcut(key('K', { metaKey: true }))).toBe(true)
    expect(isSearchShortcut(key('/'))).toBe(true)
    expect(isSearchShortcut(key('/', {}, field))).toBe(false)
    expect(isSearchShortcut(key('/', {}, document.createElement('input')))).toBe(false)
    expect(isSearchShortcut(key('k'))).toBe(false)
    expect(isSearchShortcut(key('k', { ctrlKey: true, altKey: true }))).toBe(false)
  })

  it('builds permalinks the router reads back', () => {
    expect(permalinkPath('dm.0123456789abcdef01234567', '1700000000000-3')).toBe(
      '/r/dm.0123456789abcdef01234567/m/1700000000000-3',
    )
  })
})

describe('search store', () => {
  it('runs a search, pages it, and drops answers of an older search', async () => {
    const search = useSearchStore()
    vi.mocked(api.search).mockResolvedValueOnce({ results: [hit('2-0')], next_cursor: 'c1' })
    search.text = 'deploy'
    await search.run()
    expect(api.search).toHaveBeenCalledWith('deploy', { room: undefined, limit: 20 })
    vi.mocked(api.search).mockResolvedValueOnce({ results: [hit('2-0'), hit('1-0')], next_cursor: null })
    await search.more()
    expect(search.results.map((h) => h.message.id)).toEqual(['2-0', '1-0'])
    expect(search.nextCursor).toBeNull()

    let answer: (value: { results: SearchHit[]; next_cursor: null }) => void = () => {}
    vi.mocked(api.search).mockReturnValueOnce(new Promise((resolve) => (answer = resolve)))
    const slow = search.run()
    vi.mocked(api.search).mockResolvedValueOnce({ results: [hit('9-0')], next_cursor: null })
    search.text = 'release'
    await search.run()
    answer({ results: [hit('5-0')], next_cursor: null })
    await slow
    expect(search.results.map((h) => h.message.id)).toEqual(['9-0'])
  })

  it('shows a refusal as a message, and asks nothing for text without words', async () => {
    const search = useSearchStore()
    vi.mocked(api.search).mockRejectedValueOnce(new ApiError(429, 'search_throttled', 'slow', 7))
    search.text = 'deploy'
    await search.run()
    expect(search.error).toContain('7')
    search.text = '***'
    await search.run()
    expect(api.search).toHaveBeenCalledTimes(1)
    expect(search.error).toBeNull()
  })
})

describe('messages around a permalink', () => {
  it('joins a window near the latest to the timeline without a hole', async () => {
    const messages = useMessagesStore()
    vi.mocked(api.latestMessages).mockResolvedValue({
      messages: [message('10-0'), message('11-0')],
      has_more: true,
    })
    vi.mocked(api.messagesAround).mockResolvedValue({
      messages: [message('4-0'), message('5-0'), message('6-0')],
      has_more: true,
      has_newer: true,
    })
    vi.mocked(api.messagesAfter).mockResolvedValue({
      messages: [message('7-0'), message('10-0'), message('11-0')],
      has_more: false,
    })
    await messages.loadLatest('lobby')
    expect(await messages.loadAround('lobby', '5-0')).toBe(true)
    const lobby = messages.timeline('lobby')
    expect(lobby.messages.map((m) => m.id)).toEqual(['4-0', '5-0', '6-0', '7-0', '10-0', '11-0'])
    expect(lobby.detached).toBe(false)
    expect(lobby.hasOlder).toBe(true)
    // Held already: nothing is asked.
    expect(await messages.loadAround('lobby', '10-0')).toBe(true)
    expect(api.messagesAround).toHaveBeenCalledTimes(1)
  })

  it('shows a window far back alone until back to the latest, and says when it is gone', async () => {
    const messages = useMessagesStore()
    vi.mocked(api.latestMessages).mockResolvedValue({ messages: [message('900-0')], has_more: true })
    vi.mocked(api.messagesAround).mockResolvedValue({
      messages: [message('4-0'), message('5-0')],
      has_more: false,
      has_newer: true,
    })
    let next = 100
    vi.mocked(api.messagesAfter).mockImplementation(async () => {
      next += 1
      return { messages: [message(`${next}-0`)], has_more: true }
    })
    await messages.loadLatest('lobby')
    expect(await messages.loadAround('lobby', '5-0')).toBe(true)
    const lobby = messages.timeline('lobby')
    expect(lobby.detached).toBe(true)
    expect(lobby.messages[0]!.id).toBe('4-0')
    expect(lobby.messages.some((m) => m.id === '900-0')).toBe(false)
    messages.receive(message('901-0')) // live, while away: not shown in the old window
    expect(lobby.messages.some((m) => m.id === '901-0')).toBe(false)

    await messages.backToLatest('lobby')
    expect(lobby.detached).toBe(false)
    expect(lobby.messages.map((m) => m.id)).toEqual(['900-0'])

    // Writing while reading an old window goes back to the latest, where it will show.
    await messages.loadAround('lobby', '5-0')
    expect(lobby.detached).toBe(true)
    expect(messages.send('lobby', 'back to now')).toBe(true)
    await vi.waitFor(() => expect(lobby.detached).toBe(false))

    vi.mocked(api.messagesAround).mockRejectedValueOnce(new ApiError(404, 'message_not_found', ''))
    expect(await messages.loadAround('lobby', '3-0')).toBe(false)
  })
})
