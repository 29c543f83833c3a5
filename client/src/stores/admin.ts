import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { api } from '@/api/http'
import type { ServerStatus } from '@/api/types'

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

  return { samples, error, latest, poll, startPolling, stopPolling }
})
