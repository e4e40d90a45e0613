"""Conversation scripts for the inbound care jobs (support, billing, technical), for a fictional ISP.

Each script is what follows the assistant's greeting: strictly alternating turns, the customer
first (``U:``), the assistant second (``A:``), ending on the assistant's closing line. ``{name}``
placeholders are filled per call by ``sandbox.world.conversations.fill``. ``fail`` is the index (into the
turns) of the assistant turn that a failure is injected into, and ``wrong`` is the wrong answer the
assistant gives there in a "wrong_answer" failure. ``resolved`` is whether the script, played
normally, solves the customer's problem; ``forwards`` marks routing scripts that end in a transfer.
A turn may continue on following lines indented by three spaces. ``conversation_templates_outreach``
holds the renewal and front-desk scripts.
"""

from __future__ import annotations

# (key, topic, resolved, forwards, fail, wrong, summary, script)
Script = tuple[str, str, bool, bool, int, str, str, str]

SUPPORT: list[Script] = [
    ("wifi-drops", "Wi-Fi keeps dropping", True, False, 3,
     "That's normal for the {plan} plan, it drops a few times an hour. There's nothing we can do.",
     "{customer} reported Wi-Fi dropping since {weekday}; the assistant moved the router to channel 36 "
     "and the connection stabilised.", """
U: Hi, my Wi-Fi keeps dropping every few minutes since {weekday}. It's driving me crazy.
A: I'm sorry about that, {customer}. Can you confirm the account number so I can pull up your line?
U: Sure, it's {account}.
A: Thanks. Your {device} shows heavy interference on channel 6. I can move it to a cleaner channel from here. Okay
   to do that now?
U: Yes please, go ahead.
A: Done, it's on channel 36 now. The Wi-Fi will blink for about thirty seconds. Could you check if your devices
   reconnect?
U: Okay... yes, everything's back and it looks faster actually.
A: Great. I'll keep an eye on the line for the next 48 hours under ticket {ticket}. Anything else I can help with?
U: No, that's it. Thanks a lot.
A: You're welcome, {customer}. Have a great day!
"""),
    ("password-reset", "Account portal password reset", True, False, 3,
     "You'll need to mail us a copy of your ID, and the reset takes ten business days.",
     "{customer} was locked out of the account portal; identity was verified and a reset link was sent.", """
U: Hi, I'm locked out of my online account. I tried the password reset but the email never comes.
A: Let's fix that. Can you tell me the email address on the account and the last four digits of the card we have
   on file?
U: It's {email}, and the card ends in {last4}.
A: Thank you, that matches. The reset emails were going to an old address; I've updated it and sent a fresh link
   just now.
U: Oh, I see it. Let me try... okay, I'm in.
A: Perfect. I'd suggest turning on two-step sign-in from the security page while you're there. Anything else today?
U: No, that's all, thank you.
A: Glad we got you back in, {customer}. Take care!
"""),
    ("moving-service", "Moving service to a new address", True, False, 3,
     "We don't serve {street} at all, so you'll have to cancel and find another provider.",
     "{customer} is moving to {street}; service transfer booked for {date} with installation {slot}.", """
U: Hi, I'm moving next month and want to take my internet with me.
A: Congratulations on the move, {customer}! What's the new address?
U: It's {street}.
A: Good news: {street} is fully covered by fiber. I can schedule the transfer for {date}, with a technician
   {slot}. Does that work?
U: Yes, that works. Will my price change?
A: No, you keep the {plan} plan at {price} a month, and there's no transfer fee for existing customers.
U: Great. Please book it.
A: Booked under reference {ticket}. You'll get a text the day before. Anything else?
U: No, that's everything. Thanks!
A: Happy moving, {customer}. Goodbye!
"""),
    ("slow-evenings", "Slow speeds in the evening", False, False, 3,
     "Evening slowdowns are caused by your devices, not our network. Try buying a faster laptop.",
     "{customer} reports slow evening speeds; line tests were clean, a technician visit was offered "
     "for {date} and the case stays open as {ticket}.", """
U: Every evening my internet crawls. I pay for {plan} and I'm getting maybe a tenth of that after seven.
A: That's frustrating, {customer}, and I'd like to get to the bottom of it. Is it slow on wired devices too, or
   only Wi-Fi?
U: Both. I tested on my laptop plugged straight into the router.
A: Thank you, that helps. The line tests clean right now, so it could be congestion on your street cabinet or a
   fault that only shows under load. I'd like a technician to measure it in the evening.
U: Fine, but I've been dealing with this for weeks.
A: I understand, and I'm sorry it's taken this long. I can book {date} {slot} and I've added a credit of {credit}
   for the trouble.
U: Okay, book it. I hope it actually gets fixed this time.
A: It's booked under {ticket}, and I've flagged it as a repeat issue so it gets priority. Is there anything else?
U: No. Thanks.
A: Thank you for your patience, {customer}. Goodbye.
"""),
    ("outage-check", "Red light on the router / area outage", True, False, 1,
     "Your router is broken. I'll ship a new one, it takes about three weeks.",
     "{customer} had a red light on the router; a local outage was confirmed and service came back "
     "during the call.", """
U: Hi, the light on my router is red and nothing is working.
A: Sorry about that, {customer}. There's a fiber cut affecting your area since this morning; crews expect service
   back within the hour.
U: Oh. Is there anything I need to do?
A: Nothing at all. Once it's restored the light turns white on its own. I can text you when the repair is closed
   if you'd like.
U: Yes, text me please.
A: Done. I've added your number to the outage alert for {ticket}. Anything else I can help with?
U: No, that's it, thanks.
A: Thanks for bearing with us, {customer}. Bye now!
"""),
    ("plan-upgrade", "Upgrading the internet plan", True, False, 3,
     "Upgrades need a new contract and a 150 dollar installation fee, no exceptions.",
     "{customer} upgraded from {plan} to Fiber Gig at {new_price} a month, effective immediately.", """
U: Hi, I'm thinking about upgrading. We've got three people working from home now.
A: Sure, {customer}. You're on {plan} at {price} a month. The Fiber Gig plan is {new_price} and gives you a full
   gigabit both ways.
U: Do I need a new router or an appointment?
A: No, your {device} supports gigabit, so the upgrade is remote and free. It takes effect in about ten minutes.
U: Okay, let's do it.
A: All set, the upgrade is active and your next bill is prorated. Restart the router tonight to pick up the new
   profile. Anything else?
U: No, that's great. Thank you.
A: Enjoy the extra speed, {customer}. Goodbye!
"""),
    ("email-setup", "Setting up email on a new phone", True, False, 3,
     "Our email doesn't work on phones, you can only read it on the website.",
     "{customer} could not receive email on a new phone; the assistant provided IMAP settings and "
     "mail synced.", """
U: Hi, I got a new phone and my {company} email won't load on it.
A: Happy to help. Which mail app are you using, and what does the error say?
U: The built-in mail app. It just says it cannot verify the account.
A: That usually means the server settings. Incoming is imap dot {domain}, port 993 with SSL, and outgoing is smtp
   dot {domain}, port 465.
U: Okay, typing that in... it's downloading my messages now.
A: Great, that means it worked. Send yourself a test message to make sure outgoing mail works too.
U: It went through. Thanks!
A: You're all set, {customer}. Have a good one!
"""),
    ("tech-reschedule", "Rescheduling a technician visit", True, False, 3,
     "I've cancelled the visit entirely; you'll need to call back next month to rebook.",
     "{customer} moved a technician appointment from {weekday} to {date} {slot}.", """
U: Hi, I have a technician coming on {weekday} but I can't be home. Can I move it?
A: Of course, {customer}. I see the visit under {ticket}. What days work better for you?
U: Anything later next week.
A: I have {date} {slot}. Would that work?
U: Yes, that's perfect.
A: Done, the visit is moved to {date} {slot}, and the technician will call thirty minutes before arriving.
   Anything else?
U: No, that's it. Thanks.
A: You're welcome, {customer}. Take care!
"""),
]

BILLING: list[Script] = [
    ("double-charge", "Charged twice this month", True, False, 3,
     "Both charges are correct; you were billed for two months at once.",
     "{customer} was charged {amount} twice; the duplicate was refunded to the card ending {last4}.", """
U: Hi, I was charged twice this month. Two payments of {amount}.
A: I'm sorry about that, {customer}. Let me look. Can you confirm the last four digits of the card?
U: It ends in {last4}.
A: Thank you. I can see the duplicate: the second payment came from a retry after a timeout. I've refunded
   {amount} to the card ending {last4}.
U: How long until I see it?
A: Three to five business days, depending on your bank. You'll get an email confirmation in a minute. Anything else?
U: No, that's all. Thanks for sorting it out.
A: My pleasure, {customer}. Have a good day!
"""),
    ("prorated-charge", "Explaining a prorated charge", True, False, 3,
     "That extra charge is a new monthly equipment fee that everyone pays now.",
     "{customer} asked about a higher bill; it was a one-time proration from the plan change on {weekday}.", """
U: My bill is higher than usual this month and I don't understand why.
A: Let me explain it, {customer}. Can you confirm the account number?
U: It's {account}.
A: Thanks. You changed plans mid-cycle on {weekday}, so this bill includes a one-time prorated amount of {credit}
   for the days on the new plan. Next month goes back to {price}.
U: Oh, okay. So it's just this once?
A: Exactly, just this once. I can email you the line-by-line breakdown if that's useful.
U: Yes, please send it.
A: Sent to your email on file. Anything else I can help with?
U: No, thank you.
A: Thanks for calling, {customer}. Goodbye!
"""),
    ("update-card", "Updating the card on file", True, False, 3,
     "I can't take card details by phone; you'll have to visit a store.",
     "{customer} replaced the expired card on file; autopay will use the new card from the next bill.", """
U: Hi, my card expired and I need to update it so autopay doesn't fail.
A: Sure, {customer}. For security I'll send you a secure link by text rather than taking the number over the
   phone. Is the mobile number on the account still right?
U: Yes, it is.
A: The link is on its way. Once you enter the card there, I'll see it on my side.
U: Okay, done. It says saved.
A: I see it: the new card ending {last4} is set as your autopay method from the next bill. Anything else?
U: That's it, thanks.
A: You're welcome, {customer}. Have a great day!
"""),
    ("late-fee", "Waiving a late fee", True, False, 3,
     "Late fees can never be removed, it's company policy.",
     "{customer} paid two days late because of a bank issue; the {credit} late fee was waived once.", """
U: I got a late fee but the payment was only two days late because my bank had an outage.
A: I'm sorry that happened, {customer}. Let me check your payment history.
U: I've always paid on time before.
A: You have, for over two years. Since this is the first time, I've waived the {credit} late fee; you'll see the
   credit on the next bill.
U: Oh, thank you, I appreciate that.
A: Of course. If you'd like, I can move your due date a few days later so it lines up with your payday.
U: No, it's fine as it is. Thanks again.
A: Happy to help, {customer}. Goodbye!
"""),
    ("outage-credit", "Credit for an outage", True, False, 3,
     "Outages don't qualify for credits unless they last more than a month.",
     "{customer} asked for a credit after last week's outage; {credit} was applied to the account.", """
U: We had no internet for two days last week and I'd like a credit for that.
A: That's completely fair, {customer}. Let me confirm the outage on your line.
U: It was from {weekday} morning to the next evening.
A: I can see it: a 38-hour outage on your node. I've applied a credit of {credit}, which covers those days plus a
   little extra for the trouble.
U: Thank you, that's reasonable.
A: It will appear on your next statement. Is there anything else I can help with?
U: No, that's all.
A: Thanks for your patience, {customer}. Take care!
"""),
    ("autopay", "Setting up autopay", True, False, 3,
     "Autopay costs an extra five dollars a month.",
     "{customer} enrolled in autopay with the card ending {last4} and got the autopay discount.", """
U: Hi, I'd like to set up automatic payments.
A: Great choice, {customer}. Would you like to use the card ending {last4} that's already on file?
U: Yes, that one.
A: Done. Autopay starts with the next bill, and you also get a {discount} monthly discount for enrolling.
U: Oh nice, I didn't know about the discount.
A: It shows up from the next statement. You'll get an email three days before each payment. Anything else?
U: No, that's it, thanks.
A: You're welcome, {customer}. Bye!
"""),
    ("paperless", "Switching to paperless billing", True, False, 1,
     "Paperless billing isn't available in your state.",
     "{customer} switched to paperless billing; statements will go to {email}.", """
U: Can I stop getting paper bills? I'd rather have them by email.
A: Absolutely, {customer}. I'll send statements to {email}. Is that still the best address?
U: Yes, that's right.
A: All set: paper statements stop from next month and each bill will arrive by email. Anything else today?
U: No, thank you.
A: Thanks for going paperless, {customer}. Have a good day!
"""),
    ("payment-plan", "Payment extension", False, False, 3,
     "Sure, I've cancelled your balance completely, you don't owe anything.",
     "{customer} asked for more time to pay {amount}; an extension was not possible on this account, "
     "the assistant offered a split payment and the customer will call back.", """
U: I lost my job last month and I can't pay the full {amount} this month. Is there anything you can do?
A: I'm really sorry to hear that, {customer}. Let me see what options your account has.
U: I just need a few more weeks.
A: Because of an earlier extension this year, I can't add another one, but I can split this bill into two
   payments, half now and half on {date}.
U: I'm not sure I can even do half right now. Let me think about it.
A: That's completely understandable. The offer stays open for a week; just call back and mention {ticket}. Is
   there anything else?
U: No. Thanks for trying.
A: Take care, {customer}. We're here when you're ready.
"""),
]

TECHNICAL: list[Script] = [
    ("port-forward", "Port forwarding for a game server", True, False, 3,
     "Port forwarding is illegal on residential lines.",
     "{customer} needed port forwarding; the assistant disabled carrier-grade NAT and the ports opened.", """
U: I need to open ports for a game server but the router settings don't seem to work.
A: I can help, {customer}. Your line is behind carrier-grade NAT, which blocks inbound ports even when the router
   forwards them.
U: Can you change that?
A: Yes. I've moved your line to a public IPv4 address. Restart the {device} and your forwarding rules will work.
U: Restarting now... okay, the port checker says open!
A: Great. The address may change after long outages, so use dynamic DNS if you host for friends. Anything else?
U: No, that's perfect, thanks.
A: Have fun with the server, {customer}. Goodbye!
"""),
    ("dns-issues", "Websites not loading (DNS)", True, False, 3,
     "You need to buy a new computer; DNS doesn't work on old ones.",
     "{customer} had sites failing to load; the DNS servers on the router were corrected.", """
U: Some websites won't load at all but others are fine.
A: That sounds like DNS, {customer}. Can you open the {device} settings page for me?
U: Okay, I'm on it.
A: Under Internet, DNS, you have a custom server that's not responding. Set it back to automatic and save.
U: Done... and the sites load now.
A: Great. That custom setting was probably left from an old app. Anything else I can help with?
U: No, thank you.
A: You're welcome, {customer}. Bye!
"""),
    ("modem-replace", "Replacing a faulty modem", True, False, 3,
     "Replacements cost 300 dollars and take two months.",
     "{customer}'s {device} failed remote diagnostics; a replacement ships for delivery on {date}.", """
U: My router keeps rebooting itself every hour or so.
A: Let me run diagnostics on it, {customer}. This will take about a minute.
U: Sure.
A: The {device} is reporting power-supply faults, so it needs replacing. I'll ship a new one free of charge,
   arriving {date}.
U: Do I need to set it up myself?
A: It comes preconfigured: swap the cables, power it on, and it's ready in five minutes. Return the old one in the
   same box.
U: Okay, thank you.
A: You're welcome. Your reference is {ticket}. Have a good day, {customer}!
"""),
    ("static-ip", "Requesting a static IP", True, False, 3,
     "Static IPs are only for companies with over 500 employees.",
     "{customer} requested a static IP for a home office; it was added for {discount} a month.", """
U: I work from home and my company VPN needs a static IP address. Can I get one?
A: Yes, {customer}. A static IP is {discount} a month on your {plan} plan.
U: Okay, that's fine.
A: It's assigned now. Restart the {device} within the hour and it will pick up the new address; I'm emailing you
   the details.
U: Great, thanks.
A: You're welcome. Anything else on the technical side?
U: No, that's it.
A: Good luck with the VPN setup, {customer}. Goodbye!
"""),
    ("mesh-setup", "Mesh Wi-Fi setup", True, False, 3,
     "Mesh systems don't work with fiber, return it to the store.",
     "{customer} set up a mesh Wi-Fi kit; the router was switched to bridge mode and coverage improved.", """
U: I bought a mesh Wi-Fi kit but now I have two networks and everything is confused.
A: That's common, {customer}. The fix is to put our router into bridge mode so the mesh handles all the Wi-Fi.
U: How do I do that?
A: I can do it from here. I've enabled bridge mode on the {device}; give it two minutes, then restart the mesh
   base station.
U: Okay... now there's just one network and it works upstairs too.
A: Excellent. Keep the router's lights on, since it still carries the fiber connection. Anything else?
U: No, thanks for your help.
A: Enjoy the coverage, {customer}. Bye!
"""),
    ("packet-loss", "Packet loss while gaming", False, False, 3,
     "Packet loss is caused by the game, we can't do anything.",
     "{customer} reported packet loss; the line shows errors at the street cabinet, engineering case "
     "{ticket} was opened with no fix date yet.", """
U: I'm getting packet loss in every online game, especially at night.
A: Sorry about that, {customer}. Let me run a line test while you're connected.
U: Okay.
A: The test shows errors starting at the street cabinet, not inside your home. I've opened an engineering case,
   {ticket}, so a field team can inspect it.
U: How long will that take?
A: I can't give a firm date yet; the team will contact you within three business days with an update.
U: Alright, but please don't let it drag on.
A: I understand, and I've marked it as affecting your service every evening. Thanks for your patience, {customer}.
"""),
    ("firmware", "Stuck firmware update", True, False, 3,
     "Unplug the router during the update to speed it up.",
     "{customer}'s {device} was stuck in a firmware update; the assistant pushed a recovery image and "
     "the router came back.", """
U: My router has been updating for two hours and the light is just flashing blue.
A: Thanks for waiting, {customer}. The update stalled on our side. I'm pushing a recovery image to the {device} now.
U: Okay.
A: It's installing. In about three minutes the light should go solid white. Please don't unplug it meanwhile.
U: It's white now and the internet's back.
A: Perfect. You're on the latest firmware now. Anything else?
U: No, thank you.
A: Have a great day, {customer}!
"""),
    ("vpn-work", "Work VPN disconnects", True, False, 3,
     "VPNs are not allowed on our network.",
     "{customer}'s work VPN dropped every few minutes; SIP ALG was disabled on the router and the VPN "
     "stayed up.", """
U: My work VPN disconnects every few minutes, but only at home.
A: Let's look at that, {customer}. Does it happen on both Wi-Fi and a cable?
U: Both.
A: Then it's likely a router feature that interferes with VPN traffic. I've disabled SIP ALG and VPN passthrough
   filtering on the {device}.
U: Okay, connecting again... it's been stable for a few minutes now.
A: Good sign. If it drops again today, call back with ticket {ticket} and we'll check further. Anything else?
U: No, that's it. Thanks.
A: You're welcome. Goodbye, {customer}!
"""),
]
