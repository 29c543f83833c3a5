/** Message search and permalinks, the pure part: highlighted pieces of a found body, a
 * short window of a long one, result pages kept once per message, the shortcut keys. */

import type { SearchHit } from '@/api/types'

/** A piece of a body: matched (`hit`) or not; shown as elements, never as HTML. */
export interface Piece {
  text: string
  hit: boolean
}

/** A result's body shown around its first match: at most this many characters. */
export const SNIPPET_MAX = 180

/**
 * The body cut into pieces at the server's highlight ranges ([start, end) in UTF-16 code
 * units, as String.slice counts). Ranges out of order, overlapping or out of the body are
 * clamped or skipped: a server's mistake never breaks the text.
 */
export function highlightPieces(body: string, ranges: readonly (readonly [number, number])[]): Piece[] {
  const pieces: Piece[] = []
  let at = 0
  for (const [rawStart, rawEnd] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const start = Math.max(at, Math.min(rawStart, body.length))
    const end = Math.min(Math.max(rawEnd, start), body.length)
    if (end <= start) continue
    if (start > at) pieces.push({ text: body.slice(at, start), hit: false })
    pieces.push({ text: body.slice(start, end), hit: true })
    at = end
  }
  if (at < body.length) pieces.push({ text: body.slice(at), hit: false })
  return pieces
}

/**
 * The pieces of a window of at most `max` characters of the body, starting a little before
 * its first match, with "…" where text is cut off. Never cuts a surrogate pair in two.
 */
export function snippet(
  body: string,
  ranges: readonly (readonly [number, number])[],
  max = SNIPPET_MAX,
): Piece[] {
  if (body.length <= max) return highlightPieces(body, ranges)
  const first = Math.min(...ranges.map(([start]) => start), body.length)
  let from = Math.max(0, Math.min(first - Math.floor(max / 4), body.length - max))
  let to = from + max
  if (isLowSurrogate(body.charCodeAt(from))) from += 1
  if (isLowSurrogate(body.charCodeAt(to))) to -= 1
  const shifted = ranges.map(([start, end]) => [start - from, end - from] as const)
  const pieces = highlightPieces(body.slice(from, to), shifted.filter(([, end]) => end > 0))
  if (from > 0) pieces.unshift({ text: '…', hit: false })
  if (to < body.length) pieces.push({ text: '…', hit: false })
  return pieces
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/** Results of later pages appended, each message once (ranking can move one between pages). */
export function appendResults(held: readonly SearchHit[], page: readonly SearchHit[]): SearchHit[] {
  const seen = new Set(held.map((hit) => `${hit.room.slug} ${hit.message.id}`))
  const fresh = page.filter((hit) => {
    const key = `${hit.room.slug} ${hit.message.id}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
  return [...held, ...fresh]
}

/** Whether the words typed are worth asking the server: at least one letter or digit. */
export function searchable(text: string): boolean {
  return /[\p{L}\p{N}]/u.test(text)
}

interface ShortcutKey {
  key: string
  ctrlKey: boolean
  metaKey: boolean
  altKey: boolean
  target: EventTarget | null
}

/** Ctrl+K or ⌘K anywhere, or "/" when not typing in a field: open the search. */
export function isSearchShortcut(event: ShortcutKey): boolean {
  if (event.altKey) return false
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'k') return true
  if (event.key !== '/' || event.ctrlKey || event.metaKey) return false
  return !isTextField(event.target)
}

function isTextField(target: EventTarget | null): boolean {
  if (target === null || typeof target !== 'object' || !('tagName' in target)) return false
  const element = target as { tagName: string; isContentEditable?: boolean }
  const tag = element.tagName.toUpperCase()
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || element.isContentEditable === true
}

/** The path of a message's permalink (the router's `message` route). */
export function permalinkPath(room: string, id: string): string {
  return `/r/${encodeURIComponent(room)}/m/${encodeURIComponent(id)}`
}
