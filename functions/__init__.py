"""The stage functions, one folder each; a folder imports shared/ and events/, never another stage."""
