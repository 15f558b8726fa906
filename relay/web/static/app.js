// relay console: the only script. It reloads the overview now and then
// (not while you type) and follows a WhatsApp pairing.
"use strict";
(function () {
  var secs = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var pending = document.querySelector("[data-pending]");
  if (!secs && pending) secs = 3;
  if (secs > 0) {
    setInterval(function () {
      var a = document.activeElement;
      if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT")) return;
      location.reload();
    }, secs * 1000);
  }
  var box = document.getElementById("link");
  if (!box || box.getAttribute("data-active") !== "true") return;
  var seq = box.getAttribute("data-seq");
  function show(id, on) { var e = document.getElementById(id); if (e) e.hidden = !on; }
  function poll() {
    fetch(box.getAttribute("data-status"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (st) {
        if (st.linked) { location.reload(); return; }
        if (String(st.seq) !== seq) {
          seq = String(st.seq);
          if (st.kind === "qr") document.getElementById("qr").src = box.getAttribute("data-qr") + "?seq=" + seq;
          if (st.kind === "code") document.getElementById("pairing-code").textContent = st.code;
          if (st.kind === "success") document.getElementById("link-account").textContent = st.account || "";
          if (st.kind === "error") document.getElementById("link-error-text").textContent = st.error || "";
          show("qr-box", st.kind === "qr"); show("code-box", st.kind === "code");
          show("link-waiting", st.kind === "waiting");
          show("link-success", st.kind === "success"); show("link-error", st.kind === "error");
        }
        if (st.active) setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
