// The page's script: one upload at a time, paused and resumed by the button, resumed after a reload (or a
// crash) when the same file is chosen again: tus-js-client keeps the upload URL in localStorage.
const endpointField = document.getElementById('endpoint')
const toggle = document.getElementById('toggle')
const status = document.getElementById('status')
const progress = document.getElementById('progress')
let upload = null
let running = false

endpointField.value = new URLSearchParams(location.search).get('endpoint') || 'http://127.0.0.1:8080/files/'

function setRunning (value) {
  running = value
  toggle.textContent = running ? 'Pause' : 'Resume'
}

document.getElementById('file').addEventListener('change', async (event) => {
  const file = event.target.files[0]
  if (!file) return
  if (upload) await upload.abort()
  upload = new tus.Upload(file, {
    endpoint: endpointField.value,
    metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
    retryDelays: [0, 1000, 3000, 5000, 10000],
    removeFingerprintOnSuccess: true,
    onProgress (sent, total) {
      progress.value = (sent / total) * 100
      status.textContent = `${sent} of ${total} bytes`
    },
    onError (error) {
      setRunning(false)
      status.textContent = `Failed: ${error.message}`
    },
    onSuccess () {
      toggle.disabled = true
      status.textContent = 'Done'
      const link = document.getElementById('link')
      link.href = upload.url
      link.hidden = false
    }
  })
  const previous = await upload.findPreviousUploads()
  if (previous.length > 0) {
    upload.resumeFromPreviousUpload(previous[0])
    status.textContent = 'Resuming'
  }
  toggle.disabled = false
  setRunning(true)
  upload.start()
})

toggle.addEventListener('click', () => {
  if (running) upload.abort()
  else upload.start()
  setRunning(!running)
})
