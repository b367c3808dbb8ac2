// Live updates by short polling: regions marked data-live="<ms>" (and an id) are refreshed
// from a fresh copy of this same page, so the server renders them one way only.
(function () {
  "use strict";
  function regions(doc) {
    return Array.prototype.filter.call(doc.querySelectorAll("[data-live][id]"), function (el) {
      return Number(el.getAttribute("data-live")) > 0;
    });
  }
  var live = regions(document);
  if (!live.length) return;
  var every = Math.min.apply(null, live.map(function (el) { return Number(el.dataset.live); }));
  var busy = false;

  // Says so when what is shown may be out of date, rather than going quietly stale.
  function note(text) {
    var el = document.getElementById("live-note");
    if (!el) {
      if (!text) return;
      el = document.createElement("p");
      el.id = "live-note";
      el.className = "notice";
      el.setAttribute("role", "status");
      var main = document.getElementById("main") || document.body;
      main.insertBefore(el, main.firstChild);
    }
    el.textContent = text;
    el.hidden = !text;
  }

  function refresh() {
    if (busy || document.hidden) return;
    // Every region has settled (a finished run): nothing more to fetch.
    if (!regions(document).length) return window.clearInterval(timer);
    busy = true;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.redirected) {
          // Signed out: polling again would only fetch the sign-in page.
          window.clearInterval(timer);
          note("Signed out: reload the page to sign in again.");
          return null;
        }
        if (response.status === 404) {
          // Deleted meanwhile: the page's own answer says how and when.
          window.clearInterval(timer);
          note("This was deleted or moved: reload the page to see what happened.");
          return null;
        }
        if (!response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions(document).forEach(function (el) {
          var next = fresh.getElementById(el.id);
          // Not while the user is inside it: replacing would steal their focus.
          if (!next || el.contains(document.activeElement)) return;
          if (el.innerHTML !== next.innerHTML) el.innerHTML = next.innerHTML;
          el.setAttribute("data-live", next.getAttribute("data-live") || "0");
        });
        note("");
      })
      .catch(function () {
        // The server restarting or a network blip: keep what is shown, say so, keep trying.
        note("Not up to date: the server did not answer. Trying again…");
      })
      .then(function () { busy = false; });
  }
  var timer = window.setInterval(refresh, every);
})();
