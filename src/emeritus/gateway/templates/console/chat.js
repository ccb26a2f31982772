// The chat page: send a message with fetch (the session's CSRF token in the form, no API key),
// read the answer as server-sent events, and put the model's words in with textContent only.
"use strict";
(function () {
  const form = document.getElementById("send");
  const list = document.getElementById("messages");
  const status = document.getElementById("status");
  const quota = document.getElementById("quota");
  const model = form.dataset.model;

  function item(role, text) {
    const li = document.createElement("li");
    li.className = "message " + role;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : model;
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    li.append(who, body);
    list.append(li);
    return li;
  }

  function addFeedback(li, requestId) {
    const template = document.getElementById("feedback-template");
    const copy = template.content.firstElementChild.cloneNode(true);
    copy.querySelector("input[name=request_id]").value = requestId;
    li.append(copy);
  }

  document.addEventListener("submit", async (event) => {
    const target = event.target;
    if (!target.classList || !target.classList.contains("feedback")) return;
    event.preventDefault();
    const data = new FormData(target);
    data.set("rating", event.submitter ? event.submitter.value : "up");
    const sent = await fetch(target.action, { method: "POST", body: data });
    status.textContent = sent.ok ? "Thank you: your rating was recorded." : "The rating was not recorded.";
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const text = data.get("content");
    if (!text || !String(text).trim()) return;
    const button = form.querySelector("button");
    button.disabled = true;
    status.textContent = "";
    item("user", String(text));
    const answer = item("assistant", "");
    const body = answer.querySelector(".text");
    answer.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.action, { method: "POST", body: data });
      if (!response.ok || !response.body) {
        status.textContent = "The message was not sent (" + response.status + ").";
        answer.remove();
        return;
      }
      form.reset();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const line = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (!line.startsWith("data: ")) continue;
          const message = JSON.parse(line.slice(6));
          if (message.delta !== undefined) body.textContent += message.delta;
          if (message.error !== undefined) {
            status.textContent = message.error;
            if (!body.textContent) answer.remove();
          }
          if (message.done) {
            addFeedback(answer, message.request_id);
            quota.textContent = quota.textContent.replace(/^\d+/, String(message.tokens_left));
          }
        }
      }
    } finally {
      answer.removeAttribute("aria-busy");
      button.disabled = false;
    }
  });
})();
