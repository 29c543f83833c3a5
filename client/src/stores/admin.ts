import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { api } from '@/api/http'
import type { AdminUser, ModerationEntry, ServerStatus } from '@/api/types'

export const STATUS_POLL_MS = 5_000
/** Samples kept for the charts: 5 minutes at one every 5 s. */
export const STATUS_SAMPLES = 60

export interface StatusSample {
  at: number
  status: ServerStatus
}

/** The archiver and Redis status for the admin page, polled while the page is open. */
export const useAdminStore = defineStore('admin', () => {
  const samples = ref<StatusSample[]>([])
  const error = ref<string | null>(null)
  let timer: ReturnType<typeof setInterval> | undefined

  const latest = computed(() => samples.value.at(-1) ?? null)

  async function poll(now: number = Date.now()) {
    try {
      const status = await api.adminStatus()
      samples.value = [...samples.value, { at: now, status }].slice(-STATUS_SAMPLES)
      error.value = null
    } catch (failure) {
      error.value = failure instanceof Error ? failure.message : String(failure)
    }
  }

  function startPolling() {
    stopPolling()
    void poll()
    timer = setInterval(() => void poll(), STATUS_POLL_MS)
  }

  function stopPolling() {
    clearInterval(timer)
    timer = undefined
  }

  // Users, with ban and unban; the moderation log.
  const users = ref<AdminUser[]>([])
  const usersCursor = ref<string | null>(null)
  const userQuery = ref('')
  const log = ref<ModerationEntry[]>([])
  const logCursor = ref<number | null>(null)

  /** The first page of users whose names hold `userQuery` (`fresh`), or the next one. */
  async function loadUsers(fresh: boolean) {
    const page = await api.adminUsers(userQuery.value.trim(), fresh ? null : usersCursor.value)
    users.value = fresh ? page.users : [...users.value, ...page.users]
    usersCursor.value = page.next_cursor
  }

  /** The newest moderation entries (`fresh`), or the next older page. */
  async function loadLog(fresh: boolean) {
    const page = await api.moderationLog(fresh ? null : logCursor.value)
    log.value = fresh ? page.entries : [...log.value, ...page.entries]
    logCursor.value = page.next_cursor
  }

  /** Ban for `durationS` seconds (null: until unbanned), then show the lists as they are. */
  async function ban(username: string, durationS: number | null, reason: string) {
    await api.ban(username, durationS, reason)
    await Promise.all([loadUsers(true), loadLog(true)])
  }

  async function unban(username: string) {
    await api.unban(username)
    await Promise.all([loadUsers(true), loadLog(true)])
  }

  return {
    samples,
    error,
    latest,
    poll,
    startPolling,
    stopPolling,
    users,
    usersCursor,
    userQuery,
    log,
    logCursor,
    loadUsers,
    loadLog,
    ban,
    unban,
  }
})
