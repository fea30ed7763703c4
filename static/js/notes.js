// The notes panel: notes the model saved with its save_note tool, oldest first.

export class NotesView {
  constructor(panel) {
    this.panel = panel;
    this.list = panel.querySelector("[data-notes-list]");
    this.empty = panel.querySelector("[data-notes-empty]");
    this.ids = new Set();
  }

  get count() {
    return this.ids.size;
  }

  // A `note` message: {id, title, body, created_at}. A note shown already is skipped.
  add({ id, title, body, created_at: createdAt }) {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    this.list.append(this.#item(id, title, body, createdAt));
    this.empty.hidden = true;
    this.list.scrollTop = this.list.scrollHeight;
  }

  #item(id, title, body, createdAt) {
    const item = document.createElement("li");
    item.className = "note";
    item.dataset.testid = "note";
    item.dataset.noteId = String(id);
    const heading = document.createElement("h3");
    heading.className = "note-title";
    heading.textContent = title;
    const time = document.createElement("time");
    time.dateTime = createdAt;
    const when = new Date(createdAt);
    time.textContent = Number.isNaN(when.getTime())
      ? ""
      : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("p");
    text.className = "note-body";
    text.textContent = body;
    item.append(heading, time, text);
    return item;
  }
}
