import { defineStore } from 'pinia'
import { ref } from 'vue'

import type { ClientFrame } from '@/api/types'

export type ConnectionState = 'idle' | 'connecting' | 'live' | 'reconnecting'

export interface ServerNotice {
  code: string
  message: string
  retryAfterMs: number | null
}

const NOTICE_MS = 6_000

/**
 * The state of the chat socket, as the user sees it, and the narrow port through which the
 * other stores send frames. The socket itself lives in `useChatSocket`, which binds the port.
 */
export const useConnectionStore = defineStore('connection', () => {
  const state = ref<ConnectionState>('idle')
  /** When the next reconnect attempt starts (epoch ms), while reconnecting. */
  const retryAt = ref<number | null>(null)
  /** The last error frame that was not about a message of ours. */
  const notice = ref<ServerNotice | null>(null)

  let transport: ((frame: ClientFrame) => boolean) | null = null
  let noticeTimer: ReturnType<typeof setTimeout> | undefined

  let reconnector: (() => void) | null = null

  function bindTransport(
    send: ((frame: ClientFrame) => boolean) | null,
    reconnectNow: (() => void) | null = null,
  ) {
    transport = send
    reconnector = reconnectNow
  }

  /** Drops the socket and connects again at once (what the server knows of us changed). */
  function reconnect() {
    reconnector?.()
  }

  /** Sends a frame if the socket is open; false when it is not (the frame is dropped). */
  function transmit(frame: ClientFrame): boolean {
    return transport?.(frame) ?? false
  }

  function setState(next: ConnectionState, nextRetryAt: number | null = null) {
    state.value = next
    retryAt.value = nextRetryAt
  }

  function showNotice(next: ServerNotice) {
    notice.value = next
    clearTimeout(noticeTimer)
    noticeTimer = setTimeout(dismissNotice, NOTICE_MS)
  }

  /** Runs work nobody awaits (a history load, say); a failure becomes a notice, not a silent gap. */
  function background(work: Promise<unknown>) {
    work.catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error)
      showNotice({ code: 'request_failed', message, retryAfterMs: null })
    })
  }

  function dismissNotice() {
    notice.value = null
  }

  return {
    state,
    retryAt,
    notice,
    bindTransport,
    reconnect,
    transmit,
    setState,
    showNotice,
    background,
    dismissNotice,
  }
})
