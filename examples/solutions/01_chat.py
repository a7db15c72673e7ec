from chat_app import add_turn


@rx.mutation
def send_to_all(db: rx.Writer, thread_ids: list[str], text: str) -> list[int]:
    replies = []
    for thread_id in thread_ids:
        if not thread_id:
            raise rx.RxnbError("send_to_all: a thread id is empty; name every thread")
        reply_id = add_turn(db, thread_id, text)
        db.schedule(generate, message_id=reply_id)
        replies.append(reply_id)
    return replies
