import { defineStore } from 'pinia'
import { ref } from 'vue'

import { ApiError, api } from '@/api/http'
import type { SearchHit } from '@/api/types'
import { describeError } from '@/i18n'
import { appendResults, searchable } from '@/lib/search'

const PAGE_SIZE = 20

/** Message search: the dialog's state, the words asked and the results found so far. */
export const useSearchStore = defineStore('search', () => {
  const open = ref(false)
  const text = ref('')
  /** Only in this room (its slug); null: every room we can see. */
  const room = ref<string | null>(null)
  const results = ref<SearchHit[]>([])
  const nextCursor = ref<string | null>(null)
  const searched = ref(false)
  const loading = ref(false)
  const error = ref<string | null>(null)
  /** Answers of an older search that arrive late are dropped. */
  let generation = 0

  function show() {
    open.value = true
  }

  function close() {
    open.value = false
  }

  function describe(failure: unknown): string {
    if (failure instanceof ApiError) {
      return describeError(failure.code, failure.message, (failure.retryAfter ?? 0) * 1000)
    }
    throw failure
  }

  /** Runs the search for `text` (in `room`, if set) from its first page. */
  async function run() {
    const words = text.value.trim()
    const mine = ++generation
    results.value = []
    nextCursor.value = null
    error.value = null
    searched.value = false
    if (!searchable(words)) return
    loading.value = true
    try {
      const page = await api.search(words, { room: room.value ?? undefined, limit: PAGE_SIZE })
      if (mine !== generation) return
      results.value = page.results
      nextCursor.value = page.next_cursor
      searched.value = true
    } catch (failure) {
      if (mine === generation) error.value = describe(failure)
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  /** The next page of the same search. */
  async function more() {
    const cursor = nextCursor.value
    if (cursor === null || loading.value) return
    const mine = generation
    loading.value = true
    try {
      const page = await api.search(text.value.trim(), {
        room: room.value ?? undefined,
        cursor,
        limit: PAGE_SIZE,
      })
      if (mine !== generation) return
      results.value = appendResults(results.value, page.results)
      nextCursor.value = page.next_cursor
    } catch (failure) {
      if (mine === generation) error.value = describe(failure)
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  return { open, text, room, results, nextCursor, searched, loading, error, show, close, run, more }
})
