import { defineStore } from 'pinia'
import { reactive } from 'vue'

/** What the composer of each room is doing besides writing: replying to a message. */
export const useComposeStore = defineStore('compose', () => {
  /** Per room, the id of the message the next one replies to. */
  const replyTo = reactive<Record<string, string>>({})

  function startReply(room: string, id: string) {
    replyTo[room] = id
  }

  function cancelReply(room: string) {
    delete replyTo[room]
  }

  return { replyTo, startReply, cancelReply }
})
