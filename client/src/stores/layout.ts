import { defineStore } from 'pinia'
import { ref } from 'vue'

/** Which side panels are open (the room drawer on phones, the online list). */
export const useLayoutStore = defineStore('layout', () => {
  const drawerOpen = ref(false)
  const onlineOpen = ref(window.matchMedia?.('(min-width: 1100px)').matches ?? false)

  function setDrawer(open: boolean) {
    drawerOpen.value = open
  }

  function toggleOnline() {
    onlineOpen.value = !onlineOpen.value
  }

  return { drawerOpen, onlineOpen, setDrawer, toggleOnline }
})
