# The fixture's stand-in for NixOS's installer/scan/not-detected.nix, which a
# hardware configuration imports on bare metal: firmware the hardware scan
# could not tell is needed.
{ lib, ... }:
{
  hardware.enableRedistributableFirmware = lib.mkDefault true;
}
