import { ref } from 'vue'

/**
 * One request at a time from a form: `busy` is true while it runs (the submit button shows
 * it), and a second submit meanwhile is ignored rather than sent twice.
 */
export function useBusy() {
  const busy = ref(false)

  async function run(work: () => Promise<void>) {
    if (busy.value) return
    busy.value = true
    try {
      await work()
    } finally {
      busy.value = false
    }
  }

  return { busy, run }
}
