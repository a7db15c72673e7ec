@rx.query
def closest(db: rx.Reader, question: str, max_distance: float = 0.9) -> list[str]:
    (vector,) = rx.llm.embed([question])
    hits = db.search(Doc.embedding, vector, k=1000, metric="cosine")
    return [h.row.text for h in hits if h.distance <= max_distance]
