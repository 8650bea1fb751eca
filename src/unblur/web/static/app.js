// The unblur page: upload a photo, poll its job, show before/after, the estimated blur and the download.
"use strict";

const $ = (id) => document.getElementById(id);
let lastFile = null;
let polling = null;

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

function setBusy(busy) {
  $("file").disabled = busy;
  $("again").disabled = busy;
  $("status").hidden = !busy;
}

async function loadOptions() {
  const response = await fetch("/api/options");
  const options = await response.json();
  for (const choice of options.choices) {
    const option = new Option(choice.label, choice.value, choice.default, choice.default);
    $("choice").add(option);
  }
  const mb = Math.round(options.max_bytes / 2 ** 20);
  const mp = Math.round(options.max_pixels / 1e6);
  $("limits").textContent = `PNG, JPEG, TIFF, WebP or BMP; up to ${mb} MB and ${mp} megapixels`;
}

async function start(file) {
  lastFile = file;
  showMessage("");
  $("result").hidden = true;
  setBusy(true);
  $("stage").textContent = `Uploading ${file.name}…`;
  $("progress").removeAttribute("value");
  const query = new URLSearchParams({ name: file.name, choice: $("choice").value });
  let response;
  try {
    response = await fetch(`/api/jobs?${query}`, { method: "POST", body: file });
  } catch (err) {
    setBusy(false);
    showMessage(`The upload failed: ${err}`);
    return;
  }
  const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  if (!response.ok) {
    setBusy(false);
    showMessage(body.error);
    return;
  }
  poll(body.id);
}

function poll(id) {
  clearTimeout(polling);
  polling = setTimeout(async () => {
    const response = await fetch(`/api/jobs/${id}`);
    const job = await response.json();
    if (!response.ok) {
      setBusy(false);
      showMessage(job.error);
      return;
    }
    const tiles = job.total > 0 ? ` (${job.done} of ${job.total} tiles)` : "";
    $("stage").textContent = `${job.name}: ${job.stage}${tiles}, ${job.elapsed} s`;
    if (job.total > 0) {
      $("progress").max = job.total;
      $("progress").value = job.done;
    } else {
      $("progress").removeAttribute("value");
    }
    if (job.state === "failed") {
      setBusy(false);
      showMessage(job.error);
    } else if (job.state === "done") {
      setBusy(false);
      show(job);
    } else {
      poll(id);
    }
  }, 400);
}

function show(job) {
  const base = `/api/jobs/${job.id}/files/`;
  $("before").src = base + "before";
  $("after").src = base + "after";
  $("after").onload = fitBefore;
  const estimate = job.files.includes("kernel") ? "kernel" : job.files.includes("defocus") ? "defocus" : null;
  $("estimate").hidden = !estimate;
  if (estimate) {
    $("estimate-img").src = base + estimate;
    $("estimate-caption").textContent = estimate === "kernel"
      ? "The blur kernel that was found (the path of the camera's shake)."
      : "Estimated defocus: brighter is blurrier (white = 16 px radius).";
  }
  $("note").textContent = job.note || "";
  $("note").hidden = !job.note;
  $("download").href = base + "result";
  $("download").setAttribute("download", job.name);
  $("again").hidden = false;
  $("result").hidden = false;
  $("stage").textContent = `${job.name}: done in ${job.elapsed} s`;
  setSlider();
}

function fitBefore() {
  // The before picture is drawn at the after picture's displayed size, clipped to the slider's position.
  $("before").style.width = `${$("after").clientWidth}px`;
}

function setSlider() {
  const value = $("slider").value;
  $("before-clip").style.width = `${value}%`;
  $("divider").style.left = `${value}%`;
}

function init() {
  loadOptions().catch((err) => showMessage(`Cannot reach the unblur server: ${err}`));
  $("file").addEventListener("change", () => {
    if ($("file").files.length) start($("file").files[0]);
    $("file").value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length && !$("file").disabled) start(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file").click();
  });
  $("again").addEventListener("click", () => lastFile && start(lastFile));
  $("slider").addEventListener("input", setSlider);
  window.addEventListener("resize", fitBefore);
}

init();
