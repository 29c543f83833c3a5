/**
 * Mentions in a message body: `@username` (any case) and `@room` (everyone in the room).
 * A mention is `@` and a name not inside a longer word on either side: `@alice,` and
 * `(@alice)` mention alice; `bob@alice.example` and `@alice_b` do not. The server counts
 * mentions by the same rule (chatroom.domain.mentions); nothing is stored per message.
 */

import { linkify, type Segment as LinkSegment } from '@/lib/linkify'

export const ROOM_MENTION = 'room'

export type Segment = LinkSegment | { kind: 'mention'; text: string; name: string }

/** `@name` where name is a possible username (3-32 of A-Z a-z 0-9 _) or `room`. */
const MENTION = /(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{3,32})(?![A-Za-z0-9_])/g

/** Every name mentioned in `text`, lowercased (`room` for @room). */
export function mentionedNames(text: string): string[] {
  if (!text.includes('@')) return []
  return [...text.matchAll(MENTION)].map((match) => match[1]!.toLowerCase())
}

/** Whether the body mentions this user, by name or with `@room`. */
export function mentions(body: string, username: string): boolean {
  const mine = username.toLowerCase()
  return mentionedNames(body).some((name) => name === mine || name === ROOM_MENTION)
}

/** Splits a text segment at its mentions. */
export function splitMentions(text: string): Segment[] {
  const segments: Segment[] = []
  let cursor = 0
  for (const match of text.matchAll(MENTION)) {
    if (match.index > cursor) segments.push({ kind: 'text', text: text.slice(cursor, match.index) })
    segments.push({ kind: 'mention', text: match[0], name: match[1]!.toLowerCase() })
    cursor = match.index + match[0].length
  }
  if (cursor < text.length) segments.push({ kind: 'text', text: text.slice(cursor) })
  return segments
}

/** A body as text, links and mentions: rendered as text nodes and elements, never HTML. */
export function segmentBody(body: string): Segment[] {
  return linkify(body).flatMap((segment) =>
    segment.kind === 'text' && segment.text.includes('@') ? splitMentions(segment.text) : [segment],
  )
}

/**
 * The mention being typed just before the caret (`@al|`): its start and the prefix
 * typed after the `@`, or null when the caret is not in one.
 */
export function mentionAtCaret(text: string, caret: number): { start: number; prefix: string } | null {
  const before = text.slice(0, caret)
  const match = /(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{0,32})$/.exec(before)
  if (match === null) return null
  return { start: match.index, prefix: match[1]! }
}
