@rx.query
def longest(db: rx.Reader, topic: str) -> str:
    texts = db.exec(select(Note.text).where(Note.topic == topic)).all()
    return max(texts, key=len, default="")
