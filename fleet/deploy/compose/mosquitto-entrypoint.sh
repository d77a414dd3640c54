#!/bin/sh
# Writes mosquitto's password file from the environment, then runs mosquitto.
# Runs in the eclipse-mosquitto image (it has a shell; the fleetd image does not).
set -eu
f=/mosquitto/data/passwd
rm -f "$f"
touch "$f"
chmod 0600 "$f"
mosquitto_passwd -b "$f" fleetd "$FLEETD_MQTT_PASSWORD"
# One line per device: "id:password" in EDGEFLEET_DEVICES, separated by spaces.
for d in $EDGEFLEET_DEVICES; do
	mosquitto_passwd -b "$f" "${d%%:*}" "${d#*:}"
done
chown mosquitto:mosquitto "$f" 2>/dev/null || true
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
