"""The Teams app package: manifest template, icons, and the builder of appPackage.zip.

A tool for admins and CI, run from a checkout (`make package`); it is not part of the
installed `phonedesk` distribution.
"""
