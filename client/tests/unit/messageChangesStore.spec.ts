import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type { ClientFrame, MessageChange } from '@/api/types'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'

import { alice, bob, message, signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return { ...original, api: { latestMessages: vi.fn(), messagesBefore: vi.fn() } }
})

function change(type: MessageChange['type'], id: string, fields: Partial<MessageChange> = {}): MessageChange {
  const ms = Number(id.split('-')[0])
  return { type, id, room: 'lobby', target: '1-0', user: bob, created_at: new Date(ms).toISOString(), ...fields }
}

let sent: ClientFrame[]

beforeEach(() => {
  signedIn(alice)
  sent = []
  const connection = useConnectionStore()
  connection.bindTransport((frame) => {
    sent.push(frame)
    return true
  })
  connection.setState('live')
})

afterEach(() => {
  vi.clearAllMocks()
})

describe('changes in the messages store', () => {
  it('applies a change frame to the held message and moves the resume point over its id', () => {
    const messages = useMessagesStore()
    messages.subscribed('lobby', '0-1')
    messages.receive(message('1-0', bob, 'lobby', 'hello'))
    messages.receiveChange(change('edit', '2-0', { body: 'hello again' }))
    expect(messages.timeline('lobby').messages[0]).toMatchObject({ body: 'hello again' })
    expect(messages.subscribeFrame('lobby')).toEqual({ type: 'subscribe', room: 'lobby', since: '2-0' })
  })

  it('ignores a change to a message it does not hold, but still moves the resume point', () => {
    const messages = useMessagesStore()
    messages.subscribed('lobby', '0-1')
    messages.receiveChange(change('delete', '3-0', { target: '2-5' }))
    expect(messages.timeline('lobby').messages).toEqual([])
    expect(messages.subscribeFrame('lobby')).toMatchObject({ since: '3-0' })
  })

  it('applies a change once, whether it comes live, in replay, or by our own ack', () => {
    const messages = useMessagesStore()
    messages.receive(message('1-0', bob))
    messages.receiveChange(change('react', '2-0', { emoji: '👍' }))
    messages.receiveChange(change('react', '2-0', { emoji: '👍' })) // replayed
    expect(messages.timeline('lobby').messages[0]!.reactions).toEqual([{ emoji: '👍', count: 1, me: false }])

    messages.toggleReaction(messages.timeline('lobby').messages[0]!, '👍')
    const react = messages.outbox[0]!
    expect(sent.at(-1)).toEqual({ type: 'react', room: 'lobby', client_id: react.clientId, target: '1-0', emoji: '👍' })
    messages.acknowledge(react.clientId, '4-0')
    expect(messages.outbox).toEqual([])
    // Its fan-out copy after the ack changes nothing more.
    messages.receiveChange(change('react', '4-0', { emoji: '👍', user: alice, client_id: react.clientId }))
    expect(messages.timeline('lobby').messages[0]!.reactions).toEqual([{ emoji: '👍', count: 2, me: true }])
  })

  it('does not move the resume point with the ack of a change', () => {
    const messages = useMessagesStore()
    messages.subscribed('lobby', '0-1')
    messages.receive(message('1-0', alice))
    messages.edit(messages.timeline('lobby').messages[0]!, 'new body')
    messages.acknowledge(messages.outbox[0]!.clientId, '9-0')
    expect(messages.timeline('lobby').messages[0]).toMatchObject({ body: 'new body' })
    expect(messages.subscribeFrame('lobby')).toMatchObject({ since: '1-0' })
  })

  it('toggles a reaction by what is on its way: react, then unreact', () => {
    const messages = useMessagesStore()
    messages.receive(message('1-0', bob))
    const held = messages.timeline('lobby').messages[0]!
    messages.toggleReaction(held, '🎉')
    expect(messages.reacted(held, '🎉')).toBe(true)
    messages.toggleReaction(held, '🎉')
    expect(messages.reacted(held, '🎉')).toBe(false)
    expect(sent.map((frame) => frame.type)).toEqual(['react', 'unreact'])
  })

  it('sends an edit only when the body changed and is sendable', () => {
    const messages = useMessagesStore()
    messages.receive(message('1-0', alice, 'lobby', 'same'))
    const held = messages.timeline('lobby').messages[0]!
    expect(messages.edit(held, '  same ')).toBe(true)
    expect(messages.edit(held, '   ')).toBe(false)
    expect(sent).toEqual([])
  })

  it('deletes with a reason when moderating, and a refused change is dropped with a notice', () => {
    const messages = useMessagesStore()
    messages.receive(message('1-0', bob))
    messages.remove(messages.timeline('lobby').messages[0]!, ' spam ')
    const entry = messages.outbox[0]!
    expect(sent.at(-1)).toEqual({ type: 'delete', room: 'lobby', client_id: entry.clientId, target: '1-0', reason: 'spam' })
    messages.fail(entry.clientId, 'forbidden')
    expect(messages.outbox).toEqual([])
    expect(useConnectionStore().notice).toMatchObject({ code: 'forbidden' })
    expect(messages.timeline('lobby').messages[0]!.deleted).toBeUndefined()
  })

  it('queues changes offline and sends them, in order, with messages once live', () => {
    const connection = useConnectionStore()
    connection.setState('reconnecting')
    const messages = useMessagesStore()
    messages.receive(message('1-0', alice, 'lobby', 'one'))
    messages.send('lobby', 'two', '1-0')
    messages.edit(messages.timeline('lobby').messages[0]!, 'uno')
    expect(messages.outbox.map((entry) => entry.status)).toEqual(['queued', 'queued'])
    expect(messages.queuedCount).toBe(2)
    expect(messages.pendingIn('lobby').map((entry) => entry.body)).toEqual(['two'])
    connection.setState('live')
    messages.resendPending()
    const outgoing = sent.filter((frame) => frame.type !== 'read')
    expect(outgoing.map((frame) => frame.type)).toEqual(['send', 'edit'])
    expect(outgoing[0]).toMatchObject({ reply_to: '1-0' })
  })

  it('builds the reply preview of our acked reply from the message it quotes', () => {
    const messages = useMessagesStore()
    messages.receive(message('1-0', bob, 'lobby', 'question?'))
    messages.send('lobby', 'answer', '1-0')
    messages.acknowledge(messages.outbox[0]!.clientId, '2-0')
    expect(messages.timeline('lobby').messages[1]).toMatchObject({
      body: 'answer',
      reply_to: '1-0',
      reply: { id: '1-0', body: 'question?', deleted: false },
    })
  })

  it('a history page updates the state of messages already held', async () => {
    const { api } = await import('@/api/http')
    const messages = useMessagesStore()
    messages.receive(message('1-0', bob, 'lobby', 'before'))
    vi.mocked(api.latestMessages).mockResolvedValue({
      messages: [{ ...message('1-0', bob, 'lobby', 'after'), edited_at: new Date(5).toISOString(), reactions: [] }],
      has_more: false,
    })
    await messages.loadLatest('lobby')
    expect(messages.timeline('lobby').messages).toHaveLength(1)
    expect(messages.timeline('lobby').messages[0]!.body).toBe('after')
  })
})
