// The upload page: Uppy's Dashboard and tus plugin against this server (config.json says where and how).
// Query parameters, for a page hosted elsewhere and for tests: ?endpoint=<tus creation URL>&uploads=<status API
// list URL, or "off">&chunkSize=<bytes>&parallelMinSize=<bytes>&restore=off&restoreMaxFileSize=<bytes>
// &restoreMaxTotalSize=<bytes> (config.json takes the same keys; "restore": false turns Golden Retriever off).
import { Uppy, Dashboard, Tus, GoldenRetriever } from './vendor/uppy/uppy.min.mjs'

const TOKEN_KEY = 'tusserver.token'
// Golden Retriever keeps a copy of each file up to this size in the browser (IndexedDB), so that after a reload or
// a browser restart the upload goes on without the user choosing the file again; it deletes the copy once the file
// is uploaded, or after 24 h. Larger files (and any beyond the total) come back as "ghosts": listed, to be chosen
// again, and then they resume from the server's offset. Chromium copies a 1 GiB file into its profile in about a
// second (measured); a private window keeps the copies in memory and refuses large ones (3 GiB did not fit).
// Its other store, a service worker, is not used: it holds files in the worker's memory, which a browser restart
// loses (and so does Chromium stopping an idle worker), and it would need its own script beside the page.
const RESTORE_MAX_FILE_SIZE = 1024 * 1024 * 1024
const RESTORE_MAX_TOTAL_SIZE = 2 * 1024 * 1024 * 1024
const query = new URLSearchParams(location.search)

async function loadConfig () {
  const config = {
    endpoint: 'files/',
    uploads: null,
    maxSize: null,
    parallelUploads: 1,
    parallelMinSize: 0,
    auth: false,
    restore: true,
    restoreMaxFileSize: RESTORE_MAX_FILE_SIZE,
    restoreMaxTotalSize: RESTORE_MAX_TOTAL_SIZE
  }
  try {
    const response = await fetch('config.json', { cache: 'no-store' })
    if (response.ok) Object.assign(config, await response.json())
  } catch { /* a page hosted without the server: the defaults and the query parameters */ }
  for (const key of ['endpoint', 'uploads']) {
    if (query.has(key)) config[key] = query.get(key) === 'off' ? null : query.get(key)
  }
  for (const key of ['chunkSize', 'parallelMinSize', 'parallelUploads', 'restoreMaxFileSize', 'restoreMaxTotalSize']) {
    if (query.has(key)) config[key] = Number(query.get(key))
  }
  if (query.get('restore') === 'off') config.restore = false
  config.endpoint = new URL(config.endpoint, location.href).href
  return config
}

// The token: from the URL fragment (#token=...) or the field, kept in sessionStorage (this tab only).
function takeTokenFromFragment () {
  const fragment = new URLSearchParams(location.hash.slice(1))
  if (fragment.has('token')) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get('token'))
    history.replaceState(null, '', location.pathname + location.search) // out of the address bar and history
  }
}
const token = () => sessionStorage.getItem(TOKEN_KEY) || ''
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {})

function setUpTokenForm (config, onChange) {
  const box = document.getElementById('token-box')
  const field = document.getElementById('token')
  box.open = config.auth && !token()
  field.value = token()
  document.getElementById('token-form').addEventListener('submit', (event) => {
    event.preventDefault()
    sessionStorage.setItem(TOKEN_KEY, field.value.trim())
    onChange()
  })
  document.getElementById('token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY)
    field.value = ''
    onChange()
  })
}

// The server's reason for a refusal (its body: "ERR_...: message"), else tus-js-client's message.
function reasonOf (error) {
  const response = error?.originalResponse ?? error?.cause?.originalResponse
  const body = response?.getBody?.()
  return body ? body.trim() : String(error?.message ?? error)
}

function showError (file, error) {
  const item = document.createElement('li')
  item.textContent = `${file?.name ?? 'upload'}: ${reasonOf(error)}`
  document.getElementById('error-list').append(item)
  document.getElementById('errors').hidden = false
}

// The status API's list of the caller's uploads; the section stays hidden where the server has none.
async function refreshUploads (config) {
  const section = document.getElementById('uploads')
  if (!config.uploads) return
  let response
  try {
    response = await fetch(`${config.uploads}?limit=50`, { headers: authHeaders(), cache: 'no-store' })
  } catch {
    section.hidden = true
    return
  }
  const note = document.getElementById('uploads-note')
  if (response.status === 401 || response.status === 403) {
    section.hidden = false
    note.hidden = false
    note.textContent = 'Give an access token to see your uploads.'
    document.getElementById('uploads-body').replaceChildren()
    return
  }
  const type = response.headers.get('content-type') || ''
  if (!response.ok || !type.startsWith('application/json')) {
    section.hidden = true
    return
  }
  const page = await response.json()
  note.hidden = true
  section.hidden = false
  const rows = page.uploads.filter((upload) => upload.concat !== 'partial').map(uploadRow)
  document.getElementById('uploads-body').replaceChildren(...rows)
}

function cell (text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  return td
}

function uploadRow (upload) {
  const row = document.createElement('tr')
  row.dataset.id = upload.id
  const name = upload.metadata.filename || upload.metadata.name || upload.id
  const size = upload.length == null ? `${upload.offset} B` : `${upload.offset} / ${upload.length} B`
  const link = document.createElement('td')
  if (upload.state === 'accepted' || upload.state === 'uploaded') {
    const a = document.createElement('a')
    a.href = upload.url
    a.textContent = 'Download'
    a.download = name
    a.addEventListener('click', (event) => download(event, upload.url, name))
    link.append(a)
  }
  row.append(cell(name), cell(upload.state, `state-${upload.state}`), cell(size),
    cell(new Date(upload.created_at).toLocaleString()), link)
  return row
}

// A plain link cannot send the token: with one, fetch the file and hand it over as a blob.
async function download (event, url, name) {
  if (!token()) return
  event.preventDefault()
  const response = await fetch(url, { headers: authHeaders() })
  if (!response.ok) return showError({ name }, new Error(await response.text()))
  const a = document.createElement('a')
  a.href = URL.createObjectURL(await response.blob())
  a.download = name
  a.click()
  setTimeout(() => URL.revokeObjectURL(a.href), 60000)
}

// Golden Retriever brings back the files of the last visit (and tus-js-client their upload URLs), then on its own
// waits for a click. Uploads that were under way go on by themselves, as they would have without the reload, unless
// a file came back without its bytes (a ghost: the user chooses it again, then clicks), a token is due, or the user
// had paused them all.
function resumeRestored (uppy, config) {
  const { currentUploads } = uppy.getState()
  const files = uppy.getFiles()
  const going = (file) => file.progress.uploadStarted && !file.progress.uploadComplete && !file.isPaused
  const underWay = Object.keys(currentUploads).length > 0 && files.some(going)
  if (!underWay || files.some((file) => file.isGhost) || (config.auth && !token())) return
  uppy.emit('restore-confirmed') // what the status bar's button does: resume every restored upload
}

takeTokenFromFragment()
const config = await loadConfig()
const uppy = new Uppy({ debug: query.has('debug'), autoProceed: false })
  .use(Dashboard, {
    inline: true,
    target: '#uppy',
    width: '100%',
    height: 420,
    showProgressDetails: true,
    proudlyDisplayPoweredByUppy: false,
    note: config.maxSize ? `Files up to ${(config.maxSize / 1048576).toFixed(0)} MiB` : null
  })
  .use(Tus, {
    endpoint: config.endpoint,
    chunkSize: config.chunkSize || Infinity,
    // Retried on a lost connection, 5xx, 409 and 423 (and paused while the browser is offline): ~1 min of outage.
    retryDelays: [0, 1000, 3000, 5000, 10000, 10000, 15000, 15000],
    removeFingerprintOnSuccess: true,
    headers: () => authHeaders()
  })

if (config.restore) {
  uppy.use(GoldenRetriever, {
    indexedDB: { maxFileSize: config.restoreMaxFileSize, maxTotalSize: config.restoreMaxTotalSize }
  })
  uppy.on('restored', () => resumeRestored(uppy, config))
}

// Large files go up as several partial uploads at once, joined by the server (tus concatenation).
uppy.on('file-added', (file) => {
  if (config.parallelUploads > 1 && file.size >= config.parallelMinSize) {
    uppy.setFileState(file.id, { tus: { parallelUploads: config.parallelUploads } })
  }
})
uppy.on('upload-error', (file, error) => showError(file, error))
uppy.on('restriction-failed', (file, error) => showError(file, error))
uppy.on('upload-success', () => refreshUploads(config))
uppy.on('complete', (result) => {
  const summary = (file) => ({ name: file.name, size: file.size, uploadURL: file.response?.uploadURL ?? file.tus?.uploadUrl })
  window.uploadResult = { successful: result.successful.map(summary), failed: result.failed.map(summary) }
})
setUpTokenForm(config, () => refreshUploads(config))
document.getElementById('uploads-refresh').addEventListener('click', () => refreshUploads(config))
refreshUploads(config)
window.uppy = uppy // for the console and the browser tests
