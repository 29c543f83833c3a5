import { createPinia, setActivePinia } from 'pinia'

import type { Message, ServerFrame, User } from '@/api/types'
import type { SocketLike } from '@/composables/useChatSocket'
import { useSessionStore } from '@/stores/session'

export const alice: User = { id: 1, username: 'alice', display_name: 'Alice' }
export const bob: User = { id: 2, username: 'bob', display_name: 'Bob' }

export function message(id: string, user: User = bob, room = 'lobby', body = `m ${id}`): Message {
  const ms = Number(id.split('-')[0])
  return { id, room, user, body, created_at: new Date(ms).toISOString(), client_id: null }
}

/** A fresh Pinia with `me` signed in. */
export function signedIn(me: User = alice) {
  setActivePinia(createPinia())
  const session = useSessionStore()
  session.user = me
  session.checked = true
  return session
}

/** A WebSocket stand-in: the test opens, feeds and drops it by hand. */
export class FakeSocket implements SocketLike {
  static instances: FakeSocket[] = []

  static get last(): FakeSocket {
    const socket = FakeSocket.instances.at(-1)
    if (socket === undefined) throw new Error('no socket was created')
    return socket
  }

  readyState = 0
  sent: Record<string, unknown>[] = []
  closedWith: number | null = null
  onopen: ((event: Event) => void) | null = null
  onmessage: ((event: MessageEvent) => void) | null = null
  onclose: ((event: CloseEvent) => void) | null = null
  onerror: ((event: Event) => void) | null = null

  constructor(readonly url: string) {
    FakeSocket.instances.push(this)
  }

  send(data: string) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open')
    this.sent.push(JSON.parse(data) as Record<string, unknown>)
  }

  close(code = 1000) {
    this.closedWith = code
    this.readyState = 3
  }

  open() {
    this.readyState = 1
    this.onopen?.(new Event('open'))
  }

  receive(frame: ServerFrame) {
    this.onmessage?.(new MessageEvent('message', { data: JSON.stringify(frame) }))
  }

  /** The connection died (server gone, network down). */
  drop(code = 1006) {
    this.readyState = 3
    this.onclose?.(new CloseEvent('close', { code }))
  }

  sentOfType(type: string) {
    return this.sent.filter((frame) => frame.type === type)
  }
}
