"""The smallest complete domainfm plugin: copy it to start your own."""
