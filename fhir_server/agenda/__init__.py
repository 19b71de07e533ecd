"""The patient's health agenda (issue 15): appointment status rules, prevention reminders, `$agenda`."""
