import { describe, expect, it } from 'vitest'

import type { Message, MessageChange } from '@/api/types'
import { applyChange, applyToRoom, mergeState, replyPreview } from '@/lib/messageChanges'
import { outgoingFrame, pendingEdit, pendingReaction, storedAction } from '@/lib/outgoing'
import { loadOutbox, saveOutbox } from '@/lib/outboxStorage'

import { alice, bob, message } from './fakes'

function change(type: MessageChange['type'], id: string, fields: Partial<MessageChange> = {}): MessageChange {
  const ms = Number(id.split('-')[0])
  return { type, id, room: 'lobby', target: '1-0', user: bob, created_at: new Date(ms).toISOString(), ...fields }
}

describe('applyChange', () => {
  it('edits: the new body and edited_at; an older edit changes nothing', () => {
    const held = message('1-0', bob, 'lobby', 'first')
    expect(applyChange(held, change('edit', '5-0', { body: 'second' }), false)).toBe(true)
    expect(held).toMatchObject({ body: 'second', edited_at: new Date(5).toISOString() })
    expect(applyChange(held, change('edit', '3-0', { body: 'older' }), false)).toBe(false)
    expect(held.body).toBe('second')
    // The same edit again: the same state.
    applyChange(held, change('edit', '5-0', { body: 'second' }), false)
    expect(held.body).toBe('second')
  })

  it("refuses an edit by someone other than the author", () => {
    const held = message('1-0', bob, 'lobby', 'mine')
    expect(applyChange(held, change('edit', '2-0', { body: 'hijack', user: alice }), false)).toBe(false)
    expect(held.body).toBe('mine')
  })

  it('deletes: a tombstone that no later change touches', () => {
    const held: Message = {
      ...message('1-0'),
      reactions: [{ emoji: '👍', count: 1, me: false }],
      reply_to: '0-1',
      reply: { id: '0-1', user: alice, body: 'q', deleted: false },
    }
    applyChange(held, change('delete', '2-0', { user: alice, moderated: true }), false)
    expect(held).toMatchObject({ deleted: true, body: '', reactions: [], reply: null })
    expect(applyChange(held, change('edit', '3-0', { body: 'back' }), false)).toBe(false)
    expect(applyChange(held, change('react', '4-0', { emoji: '👍' }), false)).toBe(false)
    expect(held.body).toBe('')
  })

  it('reactions: counts per emoji in first-reaction order; ours counted once', () => {
    const held = message('1-0')
    applyChange(held, change('react', '2-0', { emoji: '👍' }), false)
    applyChange(held, change('react', '3-0', { emoji: '🎉', user: alice }), true)
    applyChange(held, change('react', '4-0', { emoji: '👍', user: alice }), true)
    applyChange(held, change('react', '4-0', { emoji: '👍', user: alice }), true) // ours again
    expect(held.reactions).toEqual([
      { emoji: '👍', count: 2, me: true },
      { emoji: '🎉', count: 1, me: true },
    ])
    applyChange(held, change('unreact', '5-0', { emoji: '🎉', user: alice }), true)
    applyChange(held, change('unreact', '5-0', { emoji: '🎉', user: alice }), true) // taken back already
    applyChange(held, change('unreact', '6-0', { emoji: '👍', user: alice }), true)
    expect(held.reactions).toEqual([{ emoji: '👍', count: 1, me: false }])
    applyChange(held, change('unreact', '7-0', { emoji: '👍' }), false)
    expect(held.reactions).toEqual([])
  })

  it('ignores a reaction without an emoji and unknown change types', () => {
    const held = message('1-0')
    expect(applyChange(held, change('react', '2-0'), false)).toBe(false)
    expect(applyChange(held, { ...change('edit', '3-0'), type: 'pin' } as unknown as MessageChange, false)).toBe(false)
  })
})

describe('applyToRoom', () => {
  it('applies to the target and to the reply previews quoting it', () => {
    const original = message('1-0', bob, 'lobby', 'original')
    const reply: Message = { ...message('2-0', alice), reply_to: '1-0', reply: replyPreview(original) }
    const messages = [original, reply]
    expect(applyToRoom(messages, change('edit', '3-0', { body: 'changed' }), false)).toBe(true)
    expect(reply.reply).toMatchObject({ body: 'changed', deleted: false })
    applyToRoom(messages, change('delete', '4-0'), false)
    expect(reply.reply).toMatchObject({ body: '', deleted: true })
    expect(original.deleted).toBe(true)
  })

  it('returns false for a target it does not hold', () => {
    expect(applyToRoom([message('1-0')], change('edit', '2-0', { target: '9-9', body: 'x' }), false)).toBe(false)
  })
})

describe('replyPreview', () => {
  it('carries the first 200 characters (code points)', () => {
    const long = message('1-0', bob, 'lobby', '😀'.repeat(300))
    expect([...replyPreview(long).body]).toHaveLength(200)
  })
})

describe('mergeState', () => {
  it('takes a newer page state but keeps a newer edit and a delete we hold', () => {
    const held: Message = { ...message('1-0', bob, 'lobby', 'newest'), edited_at: new Date(9).toISOString() }
    mergeState(held, {
      ...message('1-0', bob, 'lobby', 'older'),
      edited_at: new Date(5).toISOString(),
      reactions: [{ emoji: '👍', count: 3, me: false }],
    })
    expect(held.body).toBe('newest')
    expect(held.reactions).toEqual([{ emoji: '👍', count: 3, me: false }])
    mergeState(held, { ...message('1-0', bob, 'lobby', ''), deleted: true })
    expect(held).toMatchObject({ deleted: true, body: '' })
    mergeState(held, { ...message('1-0', bob, 'lobby', 'resurrected'), edited_at: new Date(99).toISOString() })
    expect(held.body).toBe('')
  })
})

describe('outgoing', () => {
  const base = { clientId: 'c1', room: 'lobby', body: '', createdAt: 0 }

  it('builds the frame of each kind', () => {
    expect(outgoingFrame({ ...base, body: 'hi' })).toEqual({ type: 'send', room: 'lobby', body: 'hi', client_id: 'c1' })
    expect(outgoingFrame({ ...base, body: 'hi', replyTo: '1-0' })).toMatchObject({ type: 'send', reply_to: '1-0' })
    expect(outgoingFrame({ ...base, kind: 'edit', target: '1-0', body: 'b' })).toEqual({
      type: 'edit',
      room: 'lobby',
      client_id: 'c1',
      target: '1-0',
      body: 'b',
    })
    expect(outgoingFrame({ ...base, kind: 'delete', target: '1-0' })).toEqual({
      type: 'delete',
      room: 'lobby',
      client_id: 'c1',
      target: '1-0',
    })
    expect(outgoingFrame({ ...base, kind: 'delete', target: '1-0', reason: 'spam' })).toMatchObject({ reason: 'spam' })
    expect(outgoingFrame({ ...base, kind: 'unreact', target: '1-0', emoji: '👍' })).toMatchObject({
      type: 'unreact',
      emoji: '👍',
    })
  })

  it('finds the latest pending reaction toggle and edit of a message', () => {
    const outbox = [
      { ...base, clientId: 'a', kind: 'react' as const, target: '1-0', emoji: '👍' },
      { ...base, clientId: 'b', kind: 'unreact' as const, target: '1-0', emoji: '👍' },
      { ...base, clientId: 'c', kind: 'edit' as const, target: '1-0', body: 'one' },
      { ...base, clientId: 'd', kind: 'edit' as const, target: '1-0', body: 'two' },
    ]
    expect(pendingReaction(outbox, '1-0', '👍')).toBe('unreact')
    expect(pendingReaction(outbox, '1-0', '🎉')).toBeNull()
    expect(pendingEdit(outbox, '1-0')?.body).toBe('two')
    expect(pendingEdit(outbox, '2-0')).toBeNull()
  })

  it('keeps changes across a reload, and drops stored entries of the wrong shape', () => {
    const entry = { ...base, kind: 'react' as const, target: '1-0', emoji: '👍' }
    saveOutbox(1, [storedAction({ ...entry, status: 'pending', error: null, retryAfterMs: null } as typeof entry)])
    expect(loadOutbox(1)).toEqual([entry])
    sessionStorage.setItem('chatroom.outbox.1', JSON.stringify([{ ...entry, kind: 'explode' }, { ...base, target: 5 }]))
    expect(loadOutbox(1)).toEqual([])
    saveOutbox(1, [])
  })
})
