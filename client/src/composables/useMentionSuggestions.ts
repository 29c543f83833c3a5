import { computed, ref, type Ref } from 'vue'

import { api } from '@/api/http'
import type { User } from '@/api/types'
import { ROOM_MENTION, mentionAtCaret } from '@/lib/mentions'
import { useSessionStore } from '@/stores/session'

/** Suggestions shown at once. */
export const SUGGESTIONS_MAX = 6
/** Members asked for per room (the first page, by username). */
const MEMBERS_ASKED = 200
/** A room's member list is asked for again after this long. */
const MEMBERS_FRESH_MS = 60_000

export interface Suggestion {
  /** What is inserted after the `@`. */
  username: string
  /** Shown beside it; null for `@room`. */
  displayName: string | null
}

interface CachedMembers {
  at: number
  members: Promise<User[]>
}

const cache = new Map<string, CachedMembers>()

function membersOf(room: string): Promise<User[]> {
  const cached = cache.get(room)
  if (cached !== undefined && Date.now() - cached.at < MEMBERS_FRESH_MS) return cached.members
  const members = api
    .members(room, null, MEMBERS_ASKED)
    .then((page) => page.members)
    .catch(() => [] as User[]) // no list, no suggestions: typing still works
  cache.set(room, { at: Date.now(), members })
  return members
}

/** Suggestions for the prefix typed after `@`: members by username or name, then `@room`. */
export function suggestFor(prefix: string, members: readonly User[], me: string | null): Suggestion[] {
  const wanted = prefix.toLowerCase()
  const found: Suggestion[] = members
    .filter((member) => member.username.toLowerCase() !== me)
    .filter(
      (member) =>
        member.username.toLowerCase().startsWith(wanted) ||
        member.display_name.toLowerCase().startsWith(wanted),
    )
    .slice(0, SUGGESTIONS_MAX)
    .map((member) => ({ username: member.username, displayName: member.display_name }))
  if (ROOM_MENTION.startsWith(wanted) && found.length < SUGGESTIONS_MAX) {
    found.push({ username: ROOM_MENTION, displayName: null })
  }
  return found
}

/**
 * The composer's @-autocomplete: while the caret is right after `@` and a name being typed,
 * the room's members whose username or display name start with it (from the members API),
 * and `@room`. `pick` replaces what was typed with the chosen `@username `.
 */
export function useMentionSuggestions(room: Ref<string>) {
  const session = useSessionStore()
  const members = ref<User[]>([])
  const at = ref<{ start: number; prefix: string } | null>(null)
  const active = ref(0)
  let loadedFor: string | null = null

  const suggestions = computed(() =>
    at.value === null
      ? []
      : suggestFor(at.value.prefix, members.value, session.user?.username.toLowerCase() ?? null),
  )
  const open = computed(() => suggestions.value.length > 0)

  /** After each input or caret move: is the caret in a mention? */
  function update(text: string, caret: number) {
    at.value = mentionAtCaret(text, caret)
    active.value = 0
    if (at.value === null) return
    const slug = room.value
    if (loadedFor !== slug) {
      loadedFor = slug
      members.value = []
    }
    void membersOf(slug).then((list) => {
      if (room.value === slug) members.value = list
    })
  }

  function close() {
    at.value = null
  }

  function move(step: number) {
    const count = suggestions.value.length
    if (count > 0) active.value = (active.value + step + count) % count
  }

  /** The text with the mention being typed replaced by the choice, and the caret after it. */
  function pick(text: string, caret: number, choice: Suggestion = suggestions.value[active.value]!) {
    const start = at.value?.start ?? caret
    const inserted = `@${choice.username} `
    at.value = null
    return { text: text.slice(0, start) + inserted + text.slice(caret), caret: start + inserted.length }
  }

  return { suggestions, open, active, update, close, move, pick }
}
