/**
 * What we send and wait for an ack on: a message, or a change to one (edit, delete, react,
 * unreact). All go through one outbox, with a client_id each, so they share the ack, the
 * resend of unknown outcomes and the offline queue, and reach the room in the order made.
 */

import type { ClientFrame } from '@/api/types'

export type OutgoingKind = 'send' | 'edit' | 'delete' | 'react' | 'unreact'

/**
 * `queued`: written while the socket was down (or sent on a socket that dropped before the
 * ack): it goes, in order and with its client_id, as soon as the socket is back.
 * `pending`: on its way over a live socket. `failed`: the server refused it (or never
 * answered on a live socket), with a Retry button.
 */
export type OutgoingStatus = 'queued' | 'pending' | 'failed'

/** What the outbox keeps across a reload (see outboxStorage.ts). */
export interface OutgoingAction {
  clientId: string
  room: string
  /** 'send' when absent (queues stored before changes existed). */
  kind?: OutgoingKind
  /** send: the message; edit: the new body. */
  body: string
  /** When the user made it (epoch ms), for display. */
  createdAt: number
  /** edit, delete, react, unreact: the message changed. */
  target?: string
  /** react, unreact. */
  emoji?: string
  /** delete: why (kept for admins). */
  reason?: string
  /** send: the message it replies to. */
  replyTo?: string
  /** send: when it first went out on a socket (epoch ms); a Retry past the window restarts it. */
  firstSentAt?: number
}

/** An action of ours the server has not acknowledged yet. */
export interface OutgoingMessage extends OutgoingAction {
  status: OutgoingStatus
  /** Why it failed: an error code of the contract, or 'timeout'. */
  error: string | null
  retryAfterMs: number | null
}

/** What is kept of an entry across a reload (not its status: it goes again, queued). */
export function storedAction(entry: OutgoingAction): OutgoingAction {
  const { clientId, room, kind, body, createdAt, target, emoji, reason, replyTo, firstSentAt } = entry
  const stored: OutgoingAction = { clientId, room, body, createdAt }
  if (kind !== undefined && kind !== 'send') stored.kind = kind
  if (target !== undefined) stored.target = target
  if (emoji !== undefined) stored.emoji = emoji
  if (reason !== undefined) stored.reason = reason
  if (replyTo !== undefined) stored.replyTo = replyTo
  if (firstSentAt !== undefined) stored.firstSentAt = firstSentAt
  return stored
}

export const kindOf = (entry: OutgoingAction): OutgoingKind => entry.kind ?? 'send'

/** The frame that carries an outbox entry. */
export function outgoingFrame(entry: OutgoingAction): ClientFrame {
  const { room, clientId: client_id, target = '' } = entry
  switch (kindOf(entry)) {
    case 'send':
      return entry.replyTo === undefined
        ? { type: 'send', room, body: entry.body, client_id }
        : { type: 'send', room, body: entry.body, client_id, reply_to: entry.replyTo }
    case 'edit':
      return { type: 'edit', room, client_id, target, body: entry.body }
    case 'delete':
      return entry.reason ? { type: 'delete', room, client_id, target, reason: entry.reason } : { type: 'delete', room, client_id, target }
    case 'react':
      return { type: 'react', room, client_id, target, emoji: entry.emoji ?? '' }
    case 'unreact':
      return { type: 'unreact', room, client_id, target, emoji: entry.emoji ?? '' }
  }
}

/** Leeway for the network and the clock, at most a tenth of the window. */
const RESEND_WINDOW_MARGIN_MS = 60_000

/**
 * Whether a resend of this message might be stored a second time. The server remembers a
 * message's client_id for `windowMs` from when it stored it, which was no earlier than
 * when we first sent it: past that (less a margin), a first copy may be stored and
 * forgotten, and a resend would add another. So only the user sends it again, knowing.
 * A change (edit, delete, react, unreact) applied twice does no harm: never past.
 */
export function resendWindowPassed(entry: OutgoingAction, now: number, windowMs: number): boolean {
  if (kindOf(entry) !== 'send' || entry.firstSentAt === undefined) return false
  const margin = Math.min(RESEND_WINDOW_MARGIN_MS, windowMs / 10)
  return now - entry.firstSentAt > windowMs - margin
}

/**
 * Whether a reaction toggle is still on its way: the chip shows the state it will have.
 * Returns the pending kind for (target, emoji), the latest one made, or null.
 */
export function pendingReaction(
  outbox: readonly OutgoingAction[],
  target: string,
  emoji: string,
): 'react' | 'unreact' | null {
  for (let index = outbox.length - 1; index >= 0; index -= 1) {
    const entry = outbox[index]!
    const kind = kindOf(entry)
    if ((kind === 'react' || kind === 'unreact') && entry.target === target && entry.emoji === emoji) {
      return kind
    }
  }
  return null
}

/** The newest edit of a message still on its way (its body shows meanwhile), or null. */
export function pendingEdit(outbox: readonly OutgoingAction[], target: string): OutgoingAction | null {
  for (let index = outbox.length - 1; index >= 0; index -= 1) {
    const entry = outbox[index]!
    if (kindOf(entry) === 'edit' && entry.target === target) return entry
  }
  return null
}
