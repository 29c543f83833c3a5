import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { api } from '@/api/http'
import type { ServerStatus } from '@/api/types'
import { STATUS_POLL_MS, STATUS_SAMPLES, useAdminStore } from '@/stores/admin'

import { signedIn } from './fakes'

vi.mock('@/api/http', async (importOriginal) => {
  const original = await importOriginal<object>()
  return { ...original, api: { adminStatus: vi.fn() } }
})

const counters = {
  stream_length: 10,
  backlog: 2,
  pending: 0,
  archived: 8,
  dead_letters: 0,
  oldest_unarchived_age_s: 1.5,
  rows_per_s: 4,
}
const status: ServerStatus = {
  rooms: { lobby: counters },
  total: counters,
  redis: { appendonly: true, maxmemory_policy: 'noeviction', persistence_ok: true },
}

beforeEach(() => {
  vi.useFakeTimers()
  signedIn()
  vi.mocked(api.adminStatus).mockResolvedValue(status)
})

afterEach(() => {
  vi.useRealTimers()
})

describe('admin store', () => {
  it('polls every 5 s while started and keeps the last samples for the charts', async () => {
    const admin = useAdminStore()
    admin.startPolling()
    await vi.advanceTimersByTimeAsync(STATUS_POLL_MS * (STATUS_SAMPLES + 10))
    expect(admin.samples).toHaveLength(STATUS_SAMPLES)
    expect(admin.latest?.status).toEqual(status)

    admin.stopPolling()
    const calls = vi.mocked(api.adminStatus).mock.calls.length
    await vi.advanceTimersByTimeAsync(STATUS_POLL_MS * 3)
    expect(api.adminStatus).toHaveBeenCalledTimes(calls)
  })

  it('shows the error and keeps polling when a poll fails', async () => {
    vi.mocked(api.adminStatus).mockRejectedValueOnce(new Error('boom'))
    const admin = useAdminStore()
    admin.startPolling()
    await vi.advanceTimersByTimeAsync(0)
    expect(admin.error).toBe('boom')
    await vi.advanceTimersByTimeAsync(STATUS_POLL_MS)
    expect(admin.error).toBeNull()
    admin.stopPolling()
  })
})
