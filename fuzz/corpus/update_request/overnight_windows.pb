
ê
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call'
pager@acme.example+1 (650) 253-0000"
integrations@acme.example"en2
escalations@acme.example:$
support@acme.exampleAcme SupportBƒ

Asia/Tokyo22:00"02:00
UTC18:00"24:00&
Australia/Lord_Howe00:00"23:59!
Asia/Kathmandu23:30"00:00
operational_support