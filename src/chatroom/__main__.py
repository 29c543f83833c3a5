from chatroom.cli import main

main()
