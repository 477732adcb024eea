"use strict";
// Polls the job's progress endpoint about once a second and updates the panel in place;
// stops when the job ends and reloads the page once, to show failed rows and actions. A page the
// user is leaving for another is not reloaded: the reload would abort their navigation.
{
    const panel = document.getElementById("bulkadmin-progress");
    if (panel && panel.dataset.polling === "true") {
        const url = panel.dataset.url;
        const numberFields = ["processed", "total", "succeeded", "failed", "pending"];
        const textFields = ["status_display", "rate_display", "elapsed_display", "eta_display", "error"];
        const set = (name, text) => {
            for (const el of panel.querySelectorAll(`[data-field="${name}"]`)) {
                el.textContent = text;
            }
        };
        const render = (data) => {
            for (const name of numberFields) {
                set(name, data[`${name}_display`]);  // formatted by the server, as on first render
            }
            for (const name of textFields) {
                set(name, data[name] || "");
            }
            set("percent", data.percent_display);
            panel.dataset.status = data.status;
            panel.querySelector(".bulkadmin-badge").dataset.status = data.status;
            const bar = panel.querySelector(".bulkadmin-bar");
            bar.setAttribute("aria-valuenow", data.percent);
            bar.firstElementChild.style.width = `${data.percent}%`;
            panel.querySelector(".bulkadmin-error").hidden = !data.error;
            panel.querySelector('[data-field-class="failed"]').classList.toggle("bad", data.failed > 0);
        };
        const tick = async () => {
            let data;
            try {
                const response = await fetch(url, {
                    credentials: "same-origin",
                    headers: {Accept: "application/json"},
                });
                if (!response.ok) {
                    throw new Error(`HTTP ${response.status}`);
                }
                data = await response.json();
            } catch (error) {
                setTimeout(tick, 3000);  // a restarting server or a lost connection: try again later
                return;
            }
            render(data);
            if (data.polling) {
                setTimeout(tick, 1000);
            } else {
                const reload = setTimeout(() => window.location.reload(), 500);
                window.addEventListener("beforeunload", () => clearTimeout(reload));
            }
        };
        setTimeout(tick, 1000);
    }
}
