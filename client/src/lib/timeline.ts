/**
 * Turns a room's messages into what the message list shows: day separators, the "new
 * messages" marker, and groups of consecutive messages by one author.
 */

import type { Message, User } from '@/api/types'

/** Consecutive messages of one author closer than this share one header. */
export const GROUP_GAP_MS = 5 * 60_000

export interface TimelineEntry {
  key: string
  body: string
  at: Date
  /** Set for our own messages still waiting for an ack (or failed). */
  clientId: string | null
  /** The message shown (null while ours is on its way): its edits, delete, reactions. */
  message: Message | null
  /** The id of the message it replies to. */
  replyTo: string | null
}

export type TimelineItem =
  | { kind: 'day'; key: string; day: Date }
  | { kind: 'marker'; key: 'new-messages' }
  | { kind: 'group'; key: string; user: User; at: Date; entries: TimelineEntry[] }

export interface OutgoingView {
  clientId: string
  body: string
  createdAt: number
  replyTo?: string
}

const dayKey = (date: Date) => `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`

export function buildTimeline(
  messages: readonly Message[],
  outgoing: readonly OutgoingView[],
  me: User | null,
  markerId: string | null,
): TimelineItem[] {
  const items: TimelineItem[] = []
  let group: Extract<TimelineItem, { kind: 'group' }> | null = null
  let lastDay: string | null = null

  const add = (user: User, entry: TimelineEntry, marker: boolean) => {
    const day = dayKey(entry.at)
    if (day !== lastDay) {
      items.push({ kind: 'day', key: `day-${day}`, day: entry.at })
      lastDay = day
      group = null
    }
    if (marker) {
      items.push({ kind: 'marker', key: 'new-messages' })
      group = null
    }
    const previous: Extract<TimelineItem, { kind: 'group' }> | null = group
    const last = previous?.entries.at(-1)
    if (
      previous !== null &&
      last !== undefined &&
      previous.user.id === user.id &&
      // A new display name starts a new header: it shows under the name it was sent with.
      previous.user.display_name === user.display_name &&
      entry.at.getTime() - last.at.getTime() <= GROUP_GAP_MS
    ) {
      previous.entries.push(entry)
      return
    }
    group = { kind: 'group', key: `group-${entry.key}`, user, at: entry.at, entries: [entry] }
    items.push(group)
  }

  for (const message of messages) {
    add(
      message.user,
      {
        key: message.id,
        body: message.body,
        at: new Date(message.created_at),
        clientId: null,
        message,
        replyTo: message.reply_to ?? null,
      },
      message.id === markerId,
    )
  }
  if (me !== null) {
    for (const entry of outgoing) {
      const at = new Date(entry.createdAt)
      const { clientId, body } = entry
      add(me, { key: clientId, body, at, clientId, message: null, replyTo: entry.replyTo ?? null }, false)
    }
  }
  return items
}
