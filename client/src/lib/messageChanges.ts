/**
 * Edits, deletes and reactions applied to the messages a client holds. The server orders
 * them in the room's stream with the messages; a client applies each to the message it
 * targets if it holds it and ignores it otherwise (a later history page carries the current
 * state). Applying is idempotent where the state allows it: an edit older than the body held
 * changes nothing, a delete wins over everything, our own reaction counts once.
 */

import type { Message, MessageChange, Reaction, ReplyPreview } from '@/api/types'

/** How much of the quoted message a reply preview carries (the server's length too). */
export const REPLY_PREVIEW_CHARS = 200

export function replyPreview(message: Message): ReplyPreview {
  const deleted = message.deleted === true
  return {
    id: message.id,
    user: message.user,
    body: deleted ? '' : [...message.body].slice(0, REPLY_PREVIEW_CHARS).join(''),
    deleted,
  }
}

const time = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NEGATIVE_INFINITY)

function react(reactions: Reaction[], emoji: string, mine: boolean) {
  const reaction = reactions.find((candidate) => candidate.emoji === emoji)
  if (reaction === undefined) {
    reactions.push({ emoji, count: 1, me: mine })
    return
  }
  if (mine && reaction.me) return // ours, already counted
  reaction.count += 1
  if (mine) reaction.me = true
}

function unreact(reactions: Reaction[], emoji: string, mine: boolean) {
  const index = reactions.findIndex((candidate) => candidate.emoji === emoji)
  const reaction = reactions[index]
  if (reaction === undefined) return
  if (mine && !reaction.me) return // ours, already taken back
  reaction.count -= 1
  if (mine) reaction.me = false
  if (reaction.count <= 0) reactions.splice(index, 1)
}

/**
 * Applies one change to the message it targets (in place). `mine`: the change is ours (its
 * user is the signed-in user). Returns whether the message changed.
 */
export function applyChange(message: Message, change: MessageChange, mine: boolean): boolean {
  if (message.deleted === true) return false // a delete wins over anything after it
  switch (change.type) {
    case 'edit': {
      if (change.body === undefined || change.user.id !== message.user.id) return false
      if (time(change.created_at) < time(message.edited_at)) return false // an older edit
      message.body = change.body
      message.edited_at = change.created_at
      return true
    }
    case 'delete':
      message.deleted = true
      message.body = ''
      message.reply = null
      message.reactions = []
      return true
    case 'react':
    case 'unreact': {
      if (change.emoji === undefined || change.emoji === '') return false
      message.reactions ??= []
      if (change.type === 'react') react(message.reactions, change.emoji, mine)
      else unreact(message.reactions, change.emoji, mine)
      return true
    }
    default:
      return false
  }
}

/**
 * Applies a change to a room's messages: to its target, and to the reply previews that quote
 * it (an edit or delete shows in the quotes too). Returns whether the target was held.
 */
export function applyToRoom(messages: readonly Message[], change: MessageChange, mine: boolean): boolean {
  let held = false
  for (const message of messages) {
    if (message.id === change.target) {
      held = true
      applyChange(message, change, mine)
    } else if (
      message.reply?.id === change.target &&
      !message.reply.deleted &&
      message.reply.user.id === (change.type === 'edit' ? change.user.id : message.reply.user.id)
    ) {
      if (change.type === 'delete') message.reply = { ...message.reply, body: '', deleted: true }
      else if (change.type === 'edit' && change.body !== undefined) {
        message.reply = { ...message.reply, body: [...change.body].slice(0, REPLY_PREVIEW_CHARS).join('') }
      }
    }
  }
  return held
}

/**
 * A held message and the same message from a newer history page: the page's state, except
 * that what we already know to be newer stays (a later edit, a delete).
 */
export function mergeState(held: Message, page: Message) {
  if (page.deleted === true) {
    held.deleted = true
    held.body = ''
    held.reply = null
    held.reactions = []
    return
  }
  if (held.deleted === true) return
  if (time(page.edited_at) > time(held.edited_at)) {
    held.body = page.body
    held.edited_at = page.edited_at ?? null
  }
  if (page.reactions !== undefined) held.reactions = page.reactions.map((reaction) => ({ ...reaction }))
  if (page.reply !== undefined) held.reply = page.reply
}

/** Whether we reacted to the message with this emoji. */
export function reactedWith(message: Message, emoji: string): boolean {
  return message.reactions?.some((reaction) => reaction.emoji === emoji && reaction.me) === true
}
