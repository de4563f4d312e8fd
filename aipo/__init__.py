"""The aipo command line and the experiment drivers that sit on top of the three packages."""
