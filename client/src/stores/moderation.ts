import { defineStore } from 'pinia'
import { ref } from 'vue'

/** Moderation as it touches this user: the rooms they are muted in, and until when. */
export const useModerationStore = defineStore('moderation', () => {
  /** Room slug -> when the mute ends (ISO time). */
  const mutedUntil = ref<Record<string, string>>({})
  let timers: Record<string, ReturnType<typeof setTimeout>> = {}

  /** The server said so (a `muted` frame, or a send refused with `muted`); null: lifted.
   * The mute drops by itself when its time is over. */
  function setMuted(room: string, until: string | null, now: number = Date.now()) {
    clearTimeout(timers[room])
    const ends = until === null ? Number.NaN : Date.parse(until)
    if (until === null || Number.isNaN(ends) || ends <= now) {
      mutedUntil.value = Object.fromEntries(
        Object.entries(mutedUntil.value).filter(([slug]) => slug !== room),
      )
      return
    }
    mutedUntil.value = { ...mutedUntil.value, [room]: until }
    // setTimeout's longest wait is about 24.8 days; a longer mute is checked again then.
    const wait = Math.min(ends - now, 2_000_000_000)
    timers[room] = setTimeout(() => setMuted(room, wait < ends - now ? until : null), wait)
  }

  function reset() {
    Object.values(timers).forEach((timer) => clearTimeout(timer))
    timers = {}
    mutedUntil.value = {}
  }

  return { mutedUntil, setMuted, reset }
})
