/**
 * The offline queue kept across a reload: this tab's unsent messages and changes, per user, in
 * sessionStorage (per tab, so two tabs never send each other's queue). Only what is needed
 * to send again: the client_id makes a resend of a message the server already took a no-op.
 */

import type { OutgoingAction } from '@/lib/outgoing'

export type StoredOutgoing = OutgoingAction

const KINDS = new Set(['send', 'edit', 'delete', 'react', 'unreact'])
const optionalString = (value: unknown) => value === undefined || typeof value === 'string'

const key = (userId: number) => `chatroom.outbox.${userId}`

function storage(): Storage | null {
  try {
    return typeof sessionStorage === 'undefined' ? null : sessionStorage
  } catch {
    return null // storage disabled: the queue lives in memory only
  }
}

function isStored(value: unknown): value is StoredOutgoing {
  if (typeof value !== 'object' || value === null) return false
  const entry = value as Record<string, unknown>
  return (
    typeof entry.clientId === 'string' &&
    typeof entry.room === 'string' &&
    typeof entry.body === 'string' &&
    typeof entry.createdAt === 'number' &&
    (entry.kind === undefined || (typeof entry.kind === 'string' && KINDS.has(entry.kind))) &&
    optionalString(entry.target) &&
    optionalString(entry.emoji) &&
    optionalString(entry.reason) &&
    optionalString(entry.replyTo) &&
    (entry.firstSentAt === undefined || typeof entry.firstSentAt === 'number')
  )
}

export function loadOutbox(userId: number): StoredOutgoing[] {
  const text = storage()?.getItem(key(userId))
  if (!text) return []
  try {
    const parsed: unknown = JSON.parse(text)
    return Array.isArray(parsed) ? parsed.filter(isStored) : []
  } catch {
    return []
  }
}

export function saveOutbox(userId: number, entries: StoredOutgoing[]) {
  const store = storage()
  if (store === null) return
  try {
    if (entries.length === 0) store.removeItem(key(userId))
    else store.setItem(key(userId), JSON.stringify(entries))
  } catch {
    // Full or disabled: the queue still lives in memory.
  }
}
