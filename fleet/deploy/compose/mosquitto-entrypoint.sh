#!/bin/sh
# Writes mosquitto's password file from the environment, then runs mosquitto.
# Runs in the eclipse-mosquitto image (it has a shell; the fleetd image does
# not). The paths can be moved for a test outside the container.
set -eu
conf=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
f=${MOSQUITTO_PASSWD:-/mosquitto/data/passwd}
rm -f "$f"
touch "$f"
chmod 0600 "$f"
mosquitto_passwd -b "$f" fleetd "$FLEETD_MQTT_PASSWORD"
# Devices: "id:password" pairs in EDGEFLEET_DEVICES, separated by spaces.
for d in ${EDGEFLEET_DEVICES:-}; do
	mosquitto_passwd -b "$f" "${d%%:*}" "${d#*:}"
done
chown mosquitto:mosquitto "$f" 2>/dev/null || true
exec "${MOSQUITTO_BIN:-/usr/sbin/mosquitto}" -c "$conf"
