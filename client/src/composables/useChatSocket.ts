import type { ClientFrame, ServerFrame } from '@/api/types'
import { backoffDelay } from '@/lib/backoff'
import { useConnectionStore } from '@/stores/connection'
import { useMessagesStore } from '@/stores/messages'
import { useModerationStore } from '@/stores/moderation'
import { useNotificationsStore } from '@/stores/notifications'
import { usePresenceStore } from '@/stores/presence'
import { useReadsStore } from '@/stores/reads'
import { useRoomsStore } from '@/stores/rooms'
import { useSessionStore } from '@/stores/session'

export const PING_INTERVAL_MS = 25_000
/** The server closed the socket because its session ended (a logout, "log out everywhere",
 * a password change on another device): reconnecting cannot help, signing in again can. */
export const CLOSE_SIGNED_OUT = 4501
/** The server closed the socket because an admin banned this user from the site. */
export const CLOSE_BANNED = 4502

/** The part of the browser's WebSocket we use; tests inject a fake. */
export interface SocketLike {
  readonly readyState: number
  onopen: ((event: Event) => void) | null
  onmessage: ((event: MessageEvent) => void) | null
  onclose: ((event: CloseEvent) => void) | null
  onerror: ((event: Event) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

export type SocketClass = new (url: string) => SocketLike

export interface ChatSocketOptions {
  url?: string
  /** The WebSocket class (the browser's by default). */
  socketClass?: SocketClass
  /** For the backoff jitter. */
  random?: () => number
  /** Where online/offline events come from. */
  events?: Pick<Window, 'addEventListener' | 'removeEventListener'>
}

const OPEN = 1

function defaultUrl(): string {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  return `${scheme}://${location.host}/ws`
}

/**
 * The one owner of the chat WebSocket: connects with the session cookie, reconnects with
 * exponential backoff and jitter, subscribes every joined room (and the one on screen) again
 * with `since` = the last id seen, pings every 25 s (no pong by the next ping: the connection
 * is dead), and routes every server frame into the stores. A close with 4501 (the session
 * ended on the server) does not reconnect: it signs this tab out.
 */
export function useChatSocket(options: ChatSocketOptions = {}) {
  const Socket: SocketClass = options.socketClass ?? WebSocket
  const random = options.random ?? Math.random
  const events = options.events ?? window

  const connection = useConnectionStore()
  const messages = useMessagesStore()
  const notifications = useNotificationsStore()
  const presence = usePresenceStore()
  const rooms = useRoomsStore()
  const moderation = useModerationStore()
  const reads = useReadsStore()
  const session = useSessionStore()

  let socket: SocketLike | null = null
  let running = false
  let attempt = 0
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined
  let pingTimer: ReturnType<typeof setInterval> | undefined
  let awaitingPong = false

  function transmit(frame: ClientFrame): boolean {
    if (socket === null || socket.readyState !== OPEN) return false
    socket.send(JSON.stringify(frame))
    return true
  }

  function connect() {
    clearTimeout(reconnectTimer)
    connection.setState(attempt === 0 ? 'connecting' : 'reconnecting')
    const current = new Socket(options.url ?? defaultUrl())
    socket = current
    current.onopen = () => {
      attempt = 0
      connection.setState('live')
      for (const room of rooms.subscriptions()) transmit(messages.subscribeFrame(room))
      messages.resendPending()
      reads.report()
      startPing()
      // Rooms may have been created, or access changed, while we were away.
      connection.background(rooms.load())
    }
    current.onmessage = (event) => {
      const frame = parse(event.data)
      if (frame !== null) route(frame)
    }
    current.onclose = (event) => {
      if (event.code === CLOSE_SIGNED_OUT) signedOut(current)
      else if (event.code === CLOSE_BANNED) signedOut(current, event.reason || 'banned')
      else dropped(current)
    }
    current.onerror = () => {
      // A close event always follows; reconnecting starts there.
    }
  }

  /** The socket is gone (closed by the server, the network, or us): try again later. */
  function dropped(gone: SocketLike) {
    if (gone !== socket) return
    detach(gone)
    socket = null
    stopPing()
    // Sends without an ack go again on the next socket; who is online is unknown meanwhile.
    messages.connectionLost()
    presence.markUnknown()
    if (!running) return
    const delay = backoffDelay(attempt, random)
    attempt += 1
    connection.setState('reconnecting', Date.now() + delay)
    reconnectTimer = setTimeout(connect, delay)
  }

  /** The session ended on the server (or the user was banned: `banned`, the reason):
   * stop, and let the session store start afresh. */
  function signedOut(gone: SocketLike, banned: string | null = null) {
    if (gone !== socket) return
    stop()
    session.sessionEnded(banned)
  }

  function detach(target: SocketLike) {
    target.onopen = null
    target.onmessage = null
    target.onclose = null
    target.onerror = null
  }

  /** Closes a socket we no longer trust without waiting for its close handshake. */
  function abandon() {
    const current = socket
    if (current === null) return
    dropped(current)
    current.close(4000, 'abandoned')
  }

  function startPing() {
    stopPing()
    awaitingPong = false
    pingTimer = setInterval(() => {
      if (awaitingPong) {
        abandon()
        return
      }
      awaitingPong = transmit({ type: 'ping' })
    }, PING_INTERVAL_MS)
  }

  function stopPing() {
    clearInterval(pingTimer)
    pingTimer = undefined
  }

  function route(frame: ServerFrame) {
    switch (frame.type) {
      case 'subscribed':
        messages.subscribed(frame.room, frame.last_id)
        presence.setOnline(frame.room, frame.online)
        if (!messages.timelines[frame.room]?.loaded) {
          connection.background(messages.loadLatest(frame.room))
        }
        break
      case 'message':
        messages.receive(frame)
        notifications.onMessage(frame, rooms.rooms.find((room) => room.slug === frame.room))
        presence.stopTyping(frame.room, frame.user)
        break
      case 'edit':
      case 'delete':
      case 'react':
      case 'unreact':
        // Changes to messages: in the room's order, moving the resume point like messages.
        messages.receiveChange(frame)
        break
      case 'ack':
        messages.acknowledge(frame.client_id, frame.id)
        break
      case 'presence':
        if (frame.state === 'join') presence.join(frame.room, frame.user)
        else presence.leave(frame.room, frame.user)
        break
      case 'typing':
        presence.startTyping(frame.room, frame.user)
        break
      case 'pong':
        awaitingPong = false
        break
      case 'resync':
        connection.background(messages.resync(frame.room))
        break
      case 'read':
        reads.synced(frame.room, frame.id)
        break
      case 'room':
        rooms.roomEvent(frame.event, frame.room)
        break
      case 'muted':
        moderation.setMuted(frame.room, frame.until)
        break
      case 'error':
        if (frame.code === 'muted' && frame.room !== undefined) {
          moderation.setMuted(frame.room, frame.until ?? null)
        }
        if (frame.code === 'removed' && frame.room !== undefined && frame.client_id === undefined) {
          rooms.removed(frame.room) // its subscription ended: like a removal from a private room
        } else if (frame.code === 'forbidden' && frame.room !== undefined) {
          rooms.removed(frame.room) // (said once: its `room` frame may have come first)
        } else if (frame.client_id !== undefined) {
          messages.fail(frame.client_id, frame.code, frame.retry_after_ms ?? null)
        } else if (frame.code === 'rate_limited' && frame.room !== undefined) {
          // Too many frames at once (a reconnect subscribing many rooms): ask again later.
          rooms.subscribeLater(frame.room, frame.retry_after_ms ?? 1000)
        } else if (frame.code !== 'room_not_found') {
          // (A room we cannot see is handled where it shows: its pane says so and the
          // room list drops it, see rooms.load.)
          connection.showNotice({
            code: frame.code,
            message: frame.message,
            retryAfterMs: frame.retry_after_ms ?? null,
          })
        }
        break
    }
  }

  /** The page is going away (a reload, a closed tab): the read marks waiting go now. */
  function onPageHide() {
    reads.report()
  }

  /** A fresh socket now (no backoff): the server should see the session as it is now. */
  function reconnectNow() {
    abandon()
    onOnline()
  }

  function onOffline() {
    abandon()
  }

  /** The network is back: no reason to wait out the backoff. */
  function onOnline() {
    if (!running || socket !== null) return
    attempt = 0
    connect()
  }

  function start() {
    if (running) return
    running = true
    attempt = 0
    if (session.user !== null) messages.restoreOutbox(session.user.id)
    connection.bindTransport(transmit, reconnectNow)
    events.addEventListener('online', onOnline)
    events.addEventListener('offline', onOffline)
    events.addEventListener('pagehide', onPageHide)
    connect()
  }

  function stop() {
    running = false
    clearTimeout(reconnectTimer)
    events.removeEventListener('online', onOnline)
    events.removeEventListener('offline', onOffline)
    events.removeEventListener('pagehide', onPageHide)
    connection.bindTransport(null)
    const current = socket
    if (current !== null) {
      dropped(current)
      current.close(1000, 'bye')
    }
    connection.setState('idle')
  }

  return { start, stop }
}

function parse(data: unknown): ServerFrame | null {
  if (typeof data !== 'string') return null
  try {
    const frame: unknown = JSON.parse(data)
    return typeof frame === 'object' && frame !== null && 'type' in frame
      ? (frame as ServerFrame)
      : null
  } catch {
    return null
  }
}
