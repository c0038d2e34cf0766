"""下载模型 (the model download panel of 设置): ``layout`` builds and wires it, ``handlers`` holds what its
events do; the download itself is ``webui.downloads.ModelDownload``."""
