"""The ten preset ImageNet images: a manifest, and a downloader/cache that verifies every byte."""
